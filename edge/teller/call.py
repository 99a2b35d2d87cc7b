"""The customer's call as a pure state machine: ``step(call, event, now) -> (call, actions)``.

Phases: ``idle → waiting → connecting → in_call → rating → idle``, with ``reconnecting``
while the terminal republishes after its link dropped or changed. The desk's messages,
the customer's buttons and the media layer's reports are events; what the shell must do
(send a message to the cloud, join / rejoin / leave the room) comes back as actions. No I/O,
no clock: ``now`` is an argument and only stamps the record the screen shows.

A customer who gives up before the desk has even queued the request has no session id to
cancel yet: the call remembers the request id and cancels as soon as the desk names the
session. Messages for another session or request are ignored (counted by the shell).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from common.wire import call as wire
from common.wire.call import Grant


class Phase(StrEnum):
    IDLE = "idle"
    WAITING = "waiting"  # request sent; queued once the desk answers
    CONNECTING = "connecting"  # grant received, joining the room
    IN_CALL = "in_call"
    RECONNECTING = "reconnecting"  # link dropped or changed: republishing into the room
    RATING = "rating"  # after the call: "满意吗?"


#: Phases in which the terminal holds (or is getting) a seat in the call's room.
IN_ROOM = frozenset({Phase.CONNECTING, Phase.IN_CALL, Phase.RECONNECTING})


@dataclass(frozen=True, slots=True)
class Call:
    """What the terminal knows about its one call; ``notice`` is a code the screen words."""

    phase: Phase = Phase.IDLE
    request_id: str | None = None
    business: str | None = None
    session: str | None = None
    position: int | None = None
    expected_wait: float | None = None
    grant: Grant | None = None
    since: datetime | None = None  # when the phase began
    notice: str | None = None  # refused, failed, ended, link_lost, cancelled
    cause: str | None = None
    #: The customer left before the desk named the session: cancel when it does.
    cancel_pending: bool = False
    connected_once: bool = False
    #: third parties the desk says are listening in (the screen tells the customer)
    guests: tuple[str, ...] = ()
    #: the customer asked to be called back (a long queue) and may have stepped away: the
    #: request stays queued, and when the desk connects the screen rings and calls them
    ring_back: bool = False


# -- events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ask:
    """The customer pressed 视频柜员 and chose a business."""

    business: str
    request_id: str
    language: str = "cmn"
    elderly: bool = False
    customer: dict[str, str] | None = None
    #: The ID card read before queueing (先刷身份证), signed for ``request_id``.
    id_read: wire.StepResult | None = None


@dataclass(frozen=True, slots=True)
class DeskSays:
    msg: wire.DeskMessage


@dataclass(frozen=True, slots=True)
class MediaUp:
    """Janus reports the terminal's publication up (webrtcup)."""


@dataclass(frozen=True, slots=True)
class RingBack:
    """The customer chose "call me when a teller is free" while the queue is long."""


@dataclass(frozen=True, slots=True)
class LinkLost:
    """The terminal's network dropped or changed during the call."""


@dataclass(frozen=True, slots=True)
class CustomerEnds:
    cause: str = "customer ended"


@dataclass(frozen=True, slots=True)
class LivenessDone:
    verdict: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rated:
    score: int | None  # None: the customer walked away without rating


Event = Ask | DeskSays | MediaUp | RingBack | LinkLost | CustomerEnds | LivenessDone | Rated

#: The ring-back is offered when the desk expects a wait this long, or cannot say (no teller
#: on duty can serve the request now).
RING_BACK_AFTER_S = 300.0


def ring_back_offered(call: Call) -> bool:
    """Whether the screen offers "call me when a teller is free" now."""
    if call.phase is not Phase.WAITING or call.ring_back or call.session is None:
        return False
    return call.expected_wait is None or call.expected_wait >= RING_BACK_AFTER_S


# -- actions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Publish on the session topic."""

    msg: wire.SessionMessage


@dataclass(frozen=True, slots=True)
class Join:
    """Publish and subscribe in the grant's room (again with a new peer feed on transfer)."""

    grant: Grant


@dataclass(frozen=True, slots=True)
class Rejoin:
    """Republish into the same room with the same grant (the link changed)."""

    grant: Grant


@dataclass(frozen=True, slots=True)
class Leave:
    pass


@dataclass(frozen=True, slots=True)
class RunStep:
    """Perform a device step the desk asked for, and send its signed result."""

    request: wire.StepRequest


@dataclass(frozen=True, slots=True)
class Notify:
    """Show the cloud's words about a step on the customer screen ("" clears them)."""

    text: str


Action = Send | Join | Rejoin | Leave | RunStep | Notify


@dataclass(frozen=True, slots=True)
class Ignored:
    """Why an event changed nothing (the shell counts these)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Outcome:
    call: Call
    actions: tuple[Action, ...] = field(default=())
    ignored: Ignored | None = None


def _ignore(call: Call, reason: str) -> Outcome:
    return Outcome(call, (), Ignored(reason))


def _to(call: Call, phase: Phase, now: datetime, **changes: Any) -> Call:
    return replace(call, phase=phase, since=now, **changes)


def step(call: Call, event: Event, now: datetime) -> Outcome:
    """Apply one event; the new call and what the shell must do."""
    if isinstance(event, DeskSays):
        return _desk(call, event.msg, now)
    if isinstance(event, Ask):
        if call.phase not in (Phase.IDLE, Phase.RATING):
            return _ignore(call, f"ask while {call.phase}")
        customer = wire.Customer.from_dict(event.customer) if event.customer else None
        msg = wire.Request(
            event.request_id, event.business, event.language, event.elderly, customer,
            event.id_read,
        )  # fmt: skip
        fresh = Call(Phase.WAITING, event.request_id, event.business, since=now)
        return Outcome(fresh, (Send(msg),))
    if isinstance(event, RingBack):
        if not ring_back_offered(call):
            return _ignore(call, f"ring-back not offered while {call.phase}")
        assert call.session is not None  # offered only once the desk named it
        # The desk is told, so the teller's offer says the customer may have stepped away.
        return Outcome(replace(call, ring_back=True), (Send(wire.RingBack(call.session)),))
    if isinstance(event, MediaUp):
        if call.phase not in (Phase.CONNECTING, Phase.RECONNECTING):
            return _ignore(call, f"media up while {call.phase}")
        return Outcome(_to(call, Phase.IN_CALL, now, notice=None, connected_once=True))
    if isinstance(event, LinkLost):
        # Already reconnecting: the republish in progress retries by itself.
        if call.phase not in (Phase.CONNECTING, Phase.IN_CALL) or call.grant is None:
            return _ignore(call, f"link lost while {call.phase}")
        return Outcome(
            _to(call, Phase.RECONNECTING, now, notice="link_lost"), (Rejoin(call.grant),)
        )
    if isinstance(event, CustomerEnds):
        return _customer_ends(call, event.cause, now)
    if isinstance(event, LivenessDone):
        if call.phase not in IN_ROOM or call.session is None:
            return _ignore(call, "liveness verdict outside a call")
        return Outcome(call, (Send(wire.Liveness(call.session, event.verdict)),))
    if isinstance(event, Rated):
        if call.phase is not Phase.RATING:
            return _ignore(call, f"rating while {call.phase}")
        idle = Call(since=now, notice=call.notice, cause=call.cause)
        if event.score is None or call.session is None:
            return Outcome(idle)
        return Outcome(idle, (Send(wire.Rating(call.session, event.score)),))
    raise TypeError(f"not a call event: {event!r}")


def _customer_ends(call: Call, cause: str, now: datetime) -> Outcome:
    if call.phase is Phase.WAITING:
        idle = Call(since=now, notice="cancelled", request_id=call.request_id)
        if call.session is None:
            return Outcome(replace(idle, cancel_pending=True))
        return Outcome(idle, (Send(wire.Cancel(call.session, cause)),))
    if call.phase in IN_ROOM and call.session is not None:
        after = _to(call, Phase.RATING, now, notice="ended", cause=cause, grant=None)
        return Outcome(after, (Send(wire.HangUp(call.session, cause)), Leave()))
    return _ignore(call, f"customer ends while {call.phase}")


def _ours(call: Call, msg: wire.DeskMessage) -> bool:
    request_id = getattr(msg, "request_id", None)
    if request_id and request_id == call.request_id:
        return True
    return call.session is not None and getattr(msg, "session", None) == call.session


def _desk(call: Call, msg: wire.DeskMessage, now: datetime) -> Outcome:
    kind = msg.type
    if call.cancel_pending and isinstance(msg, wire.Queued) and msg.request_id == call.request_id:
        # The desk queued (or even connected) a request the customer already gave up.
        done = replace(call, cancel_pending=False)
        return Outcome(done, (Send(wire.Cancel(msg.session, "customer left")),))
    if not _ours(call, msg):
        return _ignore(call, f"{kind} for another session")
    if isinstance(msg, wire.Queued):
        if call.phase is not Phase.WAITING:
            return _ignore(call, f"queued while {call.phase}")
        return Outcome(
            replace(
                call,
                session=msg.session,
                position=int(msg.position or 0),
                expected_wait=None if msg.expected_wait is None else float(msg.expected_wait),
            )
        )
    if isinstance(msg, wire.Refused):
        if call.phase is not Phase.WAITING:
            return _ignore(call, f"refused while {call.phase}")
        return Outcome(Call(since=now, notice="refused", cause=msg.reason))
    if isinstance(msg, wire.Connect):
        grant = msg.grant
        if call.phase is Phase.WAITING:
            after = _to(call, Phase.CONNECTING, now, session=grant.session, grant=grant)
            return Outcome(after, (Join(grant),))
        if call.phase in IN_ROOM:  # a transfer: the next teller's feed
            return Outcome(replace(call, grant=grant), (Join(grant),))
        return _ignore(call, f"connect while {call.phase}")
    if isinstance(msg, wire.StepRequest):
        if call.phase not in IN_ROOM:
            return _ignore(call, f"step request while {call.phase}")
        return Outcome(call, (RunStep(msg),))
    if isinstance(msg, wire.StepOutcome):
        if call.phase not in IN_ROOM or msg.session != call.session:
            return _ignore(call, f"step outcome while {call.phase}")
        return Outcome(call, (Notify(msg.text),))
    if isinstance(msg, wire.Guest):
        if call.phase not in IN_ROOM:
            return _ignore(call, f"guest while {call.phase}")
        guests = set(call.guests) - {msg.guest}
        if msg.present:
            guests.add(msg.guest)
        return Outcome(replace(call, guests=tuple(sorted(guests))))
    # ended / failed
    cause = msg.cause
    if call.phase in IN_ROOM:
        after = _to(call, Phase.RATING, now, notice=kind, cause=cause, grant=None)
        if not call.connected_once and call.phase is Phase.CONNECTING:
            after = Call(since=now, notice=kind, cause=cause)  # never spoke: nothing to rate
        return Outcome(after, (Leave(),))
    if call.phase is Phase.WAITING:
        return Outcome(Call(since=now, notice=kind, cause=cause))
    return _ignore(call, f"{kind} while {call.phase}")
