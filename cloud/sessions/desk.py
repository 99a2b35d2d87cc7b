"""The teller desk: one owner that drives sessions, routing and media together.

The desk is where the pure pieces meet: each session's state machine (``state``), the
routing board (``routing``), the Janus rooms and tokens (a ``MediaRooms``, in production
``cloud.media.pool.JanusPool``) and TURN credentials. It knows nothing of MQTT, WebSockets
or HTTP: it tells participants what happened through an injected ``notify(address,
message)`` and hands each transition record to an injected ``persist``. The web app and the
MQTT bridge call its methods and deliver its messages.

Addresses are ``"terminal:<id>"`` and ``"teller:<id>"``. Messages (``type`` first):

    queued          to terminal  position, expected_wait (s or null), ring
    offer           to teller    session, terminal, business, language, elderly, ring_back
                                 (the customer chose to be called back and may have stepped
                                 away from the screen), expires (epoch s)
    ring_back       to teller    session: the customer of the offer open now chose to be
                                 called back (``ring_back`` arrived after the offer)
    offer_withdrawn to teller    session, cause (timeout, customer left)
    connect         to terminal  the customer's media grant (see ``Grant.message``); sent
                                 again, same token, when a transfer brings a new teller
                                 or the teller rejoins on a fresh feed (subscribe to the
                                 new ``peer_feed``)
    ended           to both      session, cause (to the old teller only on transfer)
    failed          to both      session, cause
    guest           to both      session, guest (account), present: a third party joined
                                 (``join_guest``: watches and listens) or left the call

The teller's own grant is the return value of ``accept`` (the teller's client asked), and
of ``rejoin`` when the teller's page lost its media mid-call (reloaded, crashed).
Operations run one at a time (an asyncio lock); ``run`` ticks the clock-driven parts
(offer timeouts, wrap-up limits, queue announcements). Not thread-safe: one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from cloud.media.errors import MediaError
from cloud.media.gate import Holder
from cloud.media.nodes import Node
from cloud.sessions import state as st
from cloud.sessions.errors import RoutingError
from cloud.sessions.estimate import HandleTimes, queue_status
from cloud.sessions.grants import (
    Message,
    TurnConfig,
    free_rejoin,
    make_grant,
    make_guest_grant,
)
from cloud.sessions.routing import Board, Request, TellerState
from cloud.sessions.skills import Skills
from cloud.sessions.state import Event, Session, State, Transition
from common.lease import CURRENT
from common.wire import call as wire
from common.wire.call import CUSTOMER, TELLER, Grant

Notify = Callable[[str, Message], Awaitable[None]]
Persist = Callable[[Transition, "SessionFacts"], Awaitable[None]]
AfterCall = Callable[[str, Node], Awaitable[None]]


P = ParamSpec("P")
R = TypeVar("R")


def _serialised(
    method: Callable[Concatenate[Desk, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Desk, P], Coroutine[Any, Any, R]]:
    """One operation at a time: methods await media and notify calls, and a second
    operation (a hang-up arriving during an accept) must not see the board half-changed."""

    async def wrapper(self: Desk, /, *args: P.args, **kwargs: P.kwargs) -> R:
        async with self._lock:
            term = CURRENT.set(self.tenure) if self.tenure is not None else None
            try:
                return await method(self, *args, **kwargs)
            finally:  # what changed on the board is stored before the next operation
                try:
                    await self._sync()
                finally:
                    if term is not None:
                        CURRENT.reset(term)

    functools.update_wrapper(wrapper, method)  # name and docstring, for help() and logs
    return wrapper


@dataclass(frozen=True, slots=True)
class Kept:
    """What a desk taking over needs about an open session beyond its transitions: its
    place on the board while it waits (arrival, rank, sequence number), the position the
    terminal was last told, and its call's node and grants (``media``: ``Grant.message``
    of the customer and the teller, each guest's, and the teller feeds the room has seen)."""

    queue: tuple[float, float, int] | None = None
    announced: int | None = None
    node: str | None = None
    media: Message | None = None
    #: Re-offer cooldowns while it waits: (teller id, not offered to them before), sorted.
    excluded: tuple[tuple[str, float], ...] = ()
    #: The customer chose to be called back (``Desk.ring_back``).
    ring_back: bool = False


@dataclass(frozen=True, slots=True)
class KeptTeller:
    """A teller's state on the board and since when (epoch seconds), their no-answer hold
    (no offers before ``hold_until``) and unanswered offers in a row."""

    state: TellerState
    state_since: float
    idle_since: float
    hold_until: float = 0.0
    missed: int = 0


class Keep(Protocol):
    """Where the desk stores its board as it changes (``store.keep_call``/``keep_teller``/
    ``keep_handle_times``)."""

    async def call(self, session_id: str, kept: Kept) -> None: ...
    async def teller(self, teller_id: str, kept: KeptTeller) -> None: ...
    async def handle_times(self, business: str, seconds: tuple[float, ...]) -> None: ...


@dataclass(frozen=True, slots=True)
class Adopted:
    """An open session a previous desk left, as a desk taking over adopts it: its history,
    facts, teller (serving or wrapping up), what was kept, and its room's node (checked
    to still hold the room) for a session with media."""

    session: Session
    facts: SessionFacts
    teller_id: str | None
    kept: Kept
    node: Node | None = None


#: The cause of an offer a desk taking over withdraws (the offer died with the old desk).
TAKEN_OVER = "desk taken over"


class MediaRooms(Protocol):
    async def open_room(self, room: str) -> Node: ...
    async def close_room(self, room: str) -> Node | None: ...
    async def grant(self, node: Node, room: str, token: str) -> None: ...
    async def revoke(self, node: Node, room: str, token: str) -> None: ...
    async def kick(self, node: Node, room: str, feed: str) -> None: ...
    def room_pin(self, node: Node, room: str) -> str: ...


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What is known about a session besides its transitions, for the database row."""

    terminal_id: str
    business: str
    language: str
    elderly: bool
    janus_node: str | None = None


@dataclass
class _Call:
    """What the desk keeps about a session beyond its state machine."""

    session: Session
    terminal_id: str
    business: str
    language: str
    elderly: bool
    teller_id: str | None = None
    node: Node | None = None
    customer: Grant | None = None
    teller: Grant | None = None
    #: Every teller feed published in this room, so a new grant never reuses one (its
    #: recording files would be overwritten).
    feeds: set[str] = field(default_factory=set)
    #: third parties watching the call (account -> grant)
    guests: dict[str, Grant] = field(default_factory=dict)
    #: the position the terminal was last told
    announced: int | None = None
    #: the customer chose to be called back while waiting and may have stepped away from
    #: the screen (kept after the call connects, for the record)
    ring_back: bool = False

    @property
    def away(self) -> bool:
        """Whether a teller offered this call is told the customer may be away: a
        ring-back never connected yet (a transferred customer is in the room)."""
        return self.ring_back and self.connected_at is None

    @property
    def connected_at(self) -> datetime | None:
        """When the call last connected (a transfer connects it again)."""
        times = [r.at for r in self.session.history if r.to_state is State.CONNECTED]
        return times[-1] if times else None

    @property
    def facts(self) -> SessionFacts:
        node = None if self.node is None else self.node.name
        return SessionFacts(self.terminal_id, self.business, self.language, self.elderly, node)


class Desk:
    def __init__(
        self,
        board: Board,
        media: MediaRooms,
        notify: Notify,
        clock: Callable[[], datetime],
        *,
        persist: Persist | None = None,
        after_call: AfterCall | None = None,
        turn: TurnConfig | None = None,
        times: HandleTimes | None = None,
        keep: Keep | None = None,
    ) -> None:
        self.board = board
        self.media = media
        self.notify = notify
        self.clock = clock
        self.persist = persist
        self.after_call = after_call
        self.turn = turn
        self.times = times or HandleTimes()
        self.calls: dict[str, _Call] = {}
        self.keep = keep
        self._kept: dict[str, Kept] = {}
        self._kept_tellers: dict[str, KeptTeller] = {}
        self._kept_times: dict[str, tuple[float, ...]] = {}
        self._lock = asyncio.Lock()
        #: The leader's term this desk runs in (``common.lease``; None without a lease):
        #: every operation runs inside it, so its writes are fenced by the lease's epoch
        #: (``store`` writes through ``cloud.lease.fenced``) whichever task calls it (an
        #: HTTP route, the MQTT link, the clock).
        self.tenure = CURRENT.get()

    # -- taking over -----------------------------------------------------------------------

    @_serialised
    async def adopt(
        self,
        calls: list[Adopted],
        tellers: dict[str, KeptTeller],
        times: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        """Take over the board a previous desk left (``cloud.lease``: a new leader): the
        tellers' states with their no-answer holds, the waiting customers at their places
        with their re-offer cooldowns (an open offer died with the old desk: it is
        withdrawn and the request goes back to its place), the live calls with their rooms
        and grants, the wrap-ups, and the handle times learned (``times``). Call once,
        before ``run``."""
        now = self.clock()
        for business, seconds in (times or {}).items():
            self.times.restore(business, seconds)
            self._kept_times[business] = tuple(seconds)
        for teller_id, kept in tellers.items():
            if teller_id in self.board.tellers:
                state = kept.state
                if state is TellerState.BUSY:  # busy only with a call adopted below
                    state = TellerState.AVAILABLE
                self.board.restore_teller(
                    teller_id, state, kept.state_since, kept.idle_since,
                    kept.hold_until, kept.missed,
                )  # fmt: skip
        for a in calls:
            call = _Call(
                a.session, a.facts.terminal_id, a.facts.business, a.facts.language,
                a.facts.elderly, node=a.node, announced=a.kept.announced,
                ring_back=a.kept.ring_back,
            )  # fmt: skip
            _give_media(call, a.kept.media)
            self.calls[a.session.id] = call
            state = a.session.state
            if state is State.OFFERED:
                offered_to = a.session.history[-1].teller_id
                await self._apply(a.session.id, Event.DECLINE, now, TAKEN_OVER, offered_to)
                if offered_to is not None:
                    withdrawn = {"type": "offer_withdrawn", "session": a.session.id}
                    await self.notify(f"teller:{offered_to}", {**withdrawn, "cause": TAKEN_OVER})
            if call.session.state is State.QUEUED:
                assert a.kept.queue is not None  # recovery adopts only those with a place
                arrived, rank, seq = a.kept.queue
                self.board.restore(
                    Request(a.session.id, call.business, call.language, arrived, call.elderly,
                            rank, seq, excluded=dict(a.kept.excluded))
                )  # fmt: skip
                continue
            call.teller_id = a.teller_id
            teller = None if a.teller_id is None else self.board.tellers.get(a.teller_id)
            if teller is not None:
                want = TellerState.BUSY if state is State.CONNECTED else TellerState.WRAP_UP
                if teller.state is not want:
                    since = (call.connected_at or now).timestamp()
                    if want is TellerState.WRAP_UP and a.teller_id in tellers:
                        since = tellers[a.teller_id].state_since
                    self.board.restore_teller(teller.id, want, since, teller.idle_since)

    # -- customer side -------------------------------------------------------------------

    @_serialised
    async def request(
        self, session_id: str, terminal_id: str, business: str, language: str, elderly: bool
    ) -> None:
        """A customer at a terminal asks for a teller."""
        if session_id in self.calls:
            raise RoutingError(f"session {session_id} already exists")
        now = self.clock()
        session = st.new_session(session_id, now, f"terminal {terminal_id}")
        self.board.enqueue(session_id, business, language, now.timestamp(), elderly)
        call = _Call(session, terminal_id, business, language, elderly)
        self.calls[session_id] = call
        try:
            await self._save(session.history[0], call)
            await self._apply(session_id, Event.ENQUEUE, now, f"{business}/{language}")
        except BaseException:  # not stored: not on the board either (never offered half-made)
            self.board.abandon(session_id, now.timestamp())
            self.calls.pop(session_id)
            raise
        await self._announce(session_id)
        await self._dispatch()

    @_serialised
    async def abandon(self, session_id: str, cause: str = "customer left") -> None:
        """The customer gave up before being connected."""
        await self._abandon(session_id, cause)

    async def _abandon(self, session_id: str, cause: str) -> None:
        call = self._call(session_id)
        await self._apply(session_id, Event.ABANDON, self.clock(), cause)
        await self._unqueue(session_id, cause)
        await self._release(call)  # a transferred customer was still in the room
        self.calls.pop(session_id)
        await self._dispatch()

    @_serialised
    async def ring_back(self, session_id: str, terminal_id: str) -> None:
        """The waiting customer chose to be called back (a long queue) and may step away
        from the screen: the session is marked (kept in the database for a desk taking
        over), and every offer of it says so (``ring_back``); a teller holding its offer
        now is told at once. Only the terminal's own session, only while it waits and
        never connected (RoutingError otherwise: nothing changes)."""
        call = self.calls.get(session_id)
        if call is None or call.terminal_id != terminal_id:
            raise RoutingError(f"session {session_id} is not a live session of {terminal_id}")
        state = call.session.state
        if state not in (State.QUEUED, State.OFFERED):
            raise RoutingError(f"session {session_id} is {state}, not waiting for a teller")
        if call.connected_at is not None:
            raise RoutingError(f"session {session_id} was transferred: the customer is in the call")
        if call.ring_back:
            return  # a redelivery
        call.ring_back = True
        teller = self.watcher_of(session_id)
        if state is State.OFFERED and teller is not None:
            await self.notify(f"teller:{teller}", {"type": "ring_back", "session": session_id})

    # -- teller side ---------------------------------------------------------------------

    @_serialised
    async def teller_state(self, teller_id: str, new: TellerState) -> None:
        """Available, break or offline (busy and wrap-up come from calls). Leaving wrap-up
        this way closes the session being wrapped up; a teller in a call must end it first."""
        teller = self.board.tellers.get(teller_id)
        if teller is None:
            raise RoutingError(f"unknown teller {teller_id}")
        if new is TellerState.BUSY or teller.state is TellerState.BUSY:
            raise RoutingError(f"teller {teller_id}: busy is set and ended by calls only")
        if teller.state is TellerState.WRAP_UP:
            await self._close_wrap_up(teller_id)
        cancelled = self.board.set_state(teller_id, new, self.clock().timestamp())
        if cancelled is not None:
            cause = f"teller went {new}"
            await self._apply(cancelled.request_id, Event.DECLINE, self.clock(), cause, teller_id)
        await self._dispatch()

    @_serialised
    async def set_skills(self, teller_id: str, skills: Skills) -> None:
        """Put a teller on the board, or change their skills (from their profile)."""
        self.board.set_skills(teller_id, skills, self.clock().timestamp())
        await self._dispatch()

    @_serialised
    async def accept(self, teller_id: str, session_id: str) -> Grant:
        """The teller takes the offered call: open a room, grant both sides, connect."""
        offer = self.board.offers.get(session_id)
        if offer is None or offer.teller_id != teller_id:
            raise RoutingError(f"teller {teller_id} holds no offer for {session_id}")
        now = self.clock()
        self.board.accept(session_id, now.timestamp())
        call = self._call(session_id)
        call.teller_id = teller_id
        await self._apply(session_id, Event.ACCEPT, now, "teller accepted", teller_id)
        try:
            if call.node is None:  # a transferred customer is still in the room
                call.node = await self.media.open_room(session_id)
            if call.customer is None:
                call.customer = self._grant(call, CUSTOMER)
                await self.media.grant(call.node, session_id, call.customer.token)
            call.teller = self._grant(call, TELLER)
            await self.media.grant(call.node, session_id, call.teller.token)
        except Exception as err:
            await self._fail(session_id, f"media: {err}")
            raise
        call.customer = replace(call.customer, peer_feed=call.teller.feed)
        await self.notify(f"terminal:{call.terminal_id}", call.customer.message())
        return call.teller

    @_serialised
    async def rejoin(self, teller_id: str, session_id: str) -> Grant:
        """The teller serving a call lost its media (a reloaded page, a crashed browser):
        a new grant on a fresh feed. The old token is revoked, the old publisher kicked out
        of the room if Janus still holds it, and the terminal is sent ``connect`` again
        (same token) with the new ``peer_feed``, which it follows as after a transfer.
        Guests keep their grants (the customer's feed is unchanged); ``live_calls`` shows
        the new ``teller_feed``, and a watching page joins again to see it. Only the
        serving teller, only while connected (not in wrap-up)."""
        call = self._call(session_id)
        if call.teller_id != teller_id:
            raise RoutingError(f"teller {teller_id} is not serving {session_id}")
        if call.session.state is not State.CONNECTED:
            raise RoutingError(f"session {session_id} is {call.session.state}, not connected")
        assert call.node is not None and call.teller is not None and call.customer is not None
        old, new = call.teller, self._grant(call, TELLER)
        await self.media.grant(call.node, session_id, new.token)
        call.teller = new
        await self._revoke(call.node, old)
        # Best effort: a publisher Janus already dropped is no reason to fail.
        with contextlib.suppress(MediaError):
            await self.media.kick(call.node, session_id, old.feed)
        call.customer = replace(call.customer, peer_feed=new.feed)
        await self.notify(f"terminal:{call.terminal_id}", call.customer.message())
        return new

    @_serialised
    async def transfer(
        self, teller_id: str, session_id: str, business: str, language: str, cause: str
    ) -> None:
        """The teller hands the customer on to another skill; the customer stays in the
        room and waits (with a head start) for the next teller, who joins the same room."""
        call = self._call(session_id)
        if call.session.state is not State.CONNECTED or call.teller_id != teller_id:
            raise RoutingError(f"teller {teller_id} is not connected to {session_id}")
        if business not in self.board.policy.businesses:
            raise RoutingError(f"unknown business type {business!r}")
        if language not in self.board.policy.languages:
            raise RoutingError(f"unknown language {language!r}")
        now = self.clock()
        await self._apply(session_id, Event.TRANSFER, now, cause, teller_id)
        assert call.connected_at is not None  # it was connected a moment ago
        self.times.observe(call.business, (now - call.connected_at).total_seconds())
        self.board.hang_up(teller_id, now.timestamp())
        if call.node is not None and call.teller is not None:
            await self.media.revoke(call.node, session_id, call.teller.token)
        await self._revoke(call.node, *call.guests.values())  # they watched this teller
        call.teller, call.teller_id = None, None
        call.guests.clear()
        call.business, call.language = business, language
        self.board.enqueue(session_id, business, language, now.timestamp(), call.elderly, True)
        await self._apply(session_id, Event.ENQUEUE, now, f"transfer to {business}/{language}")
        await self.notify(f"teller:{teller_id}", wire.Ended(session_id, "transferred").to_dict())
        await self._announce(session_id)
        await self._dispatch()

    @_serialised
    async def join_guest(self, session_id: str, account: str) -> Grant:
        """A supervisor or customer manager joins a connected call to watch and listen:
        the grant subscribes to the customer and the teller; both are told who is there."""
        call = self.calls.get(session_id)
        if call is None or call.session.state is not State.CONNECTED:
            raise RoutingError(f"{session_id} is not a call in progress")
        if account == call.teller_id:
            raise RoutingError(f"{account} is the teller serving {session_id}")
        assert call.node is not None and call.teller is not None  # connected
        # Joining again (a reloaded page): the old token goes.
        await self._revoke(call.node, call.guests.pop(account, None))
        grant = make_guest_grant(
            session_id, call.node.url, account, call.teller.feed, self.clock(), self.turn,
            self.media.room_pin(call.node, session_id),
        )  # fmt: skip
        await self.media.grant(call.node, session_id, grant.token)
        call.guests[account] = grant
        await self._tell_both(call, _guest(session_id, account, present=True))
        return grant

    @_serialised
    async def leave_guest(self, session_id: str, account: str) -> None:
        call = self.calls.get(session_id)
        grant = None if call is None else call.guests.pop(account, None)
        if call is None or grant is None:
            raise RoutingError(f"{account} is not watching {session_id}")
        await self._revoke(call.node, grant)
        await self._tell_both(call, _guest(session_id, account, present=False))

    def live_calls(self) -> list[Message]:
        """Calls in progress, oldest first: what a supervisor chooses from to watch."""
        out = []
        for call in self.calls.values():
            if call.session.state is not State.CONNECTED or call.connected_at is None:
                continue
            out.append(
                {
                    **_about(call),
                    "teller": call.teller_id,
                    # changes when the teller rejoins: a watching page joins again
                    "teller_feed": None if call.teller is None else call.teller.feed,
                    "since": call.connected_at.isoformat(),
                }
            )
        return sorted(out, key=lambda c: c["since"])

    @_serialised
    async def decline(self, teller_id: str, session_id: str) -> None:
        offer = self.board.offers.get(session_id)
        if offer is None or offer.teller_id != teller_id:
            raise RoutingError(f"teller {teller_id} holds no offer for {session_id}")
        self.board.decline(session_id, self.clock().timestamp())
        await self._apply(session_id, Event.DECLINE, self.clock(), "teller declined", teller_id)
        await self._dispatch()

    @_serialised
    async def hang_up(self, session_id: str, cause: str) -> None:
        """Either side ended the call: release media, teller to wrap-up."""
        await self._hang_up(session_id, cause)

    async def _hang_up(self, session_id: str, cause: str) -> None:
        call = self._call(session_id)
        await self._apply(session_id, Event.HANG_UP, self.clock(), cause, call.teller_id)
        if call.teller_id is not None:
            self.board.hang_up(call.teller_id, self.clock().timestamp())
        await self._release(call)
        await self._tell_both(call, wire.Ended(session_id, cause).to_dict())

    @_serialised
    async def finish_wrap_up(self, teller_id: str) -> None:
        """The teller is done with the paperwork: close the session, back to available."""
        teller = self.board.tellers.get(teller_id)
        if teller is None or teller.state is not TellerState.WRAP_UP:
            raise RoutingError(f"teller {teller_id} is not in wrap-up")
        await self._close_wrap_up(teller_id)
        self.board.set_state(teller_id, TellerState.AVAILABLE, self.clock().timestamp())
        await self._dispatch()

    @_serialised
    async def customer_ended(self, session_id: str, cause: str = "customer ended") -> None:
        """The terminal says the customer is done, whatever the session's state: an
        abandon before connection, a hang-up during the call."""
        state = self._call(session_id).session.state
        if state is State.CONNECTED:
            await self._hang_up(session_id, cause)
        else:
            await self._abandon(session_id, cause)

    @_serialised
    async def fail(self, session_id: str, cause: str) -> None:
        """Media or signalling broke: end the session, free the teller."""
        await self._fail(session_id, cause)

    async def _fail(self, session_id: str, cause: str) -> None:
        call = self._call(session_id)
        await self._apply(session_id, Event.FAIL, self.clock(), cause, call.teller_id)
        await self._unqueue(session_id, cause)
        await self._release(call)
        if call.teller_id is not None:
            self.board.set_state(call.teller_id, TellerState.AVAILABLE, self.clock().timestamp())
        await self._tell_both(call, wire.Failed(session_id, cause).to_dict())
        self.calls.pop(session_id)

    # -- the clock -----------------------------------------------------------------------

    @_serialised
    async def tick(self) -> None:
        """Expire offers, end overlong wrap-ups, make new offers. Call about once a second."""
        await self._dispatch()

    @_serialised
    async def announce_positions(self) -> None:
        """Tell every waiting customer their place and expected wait (every few seconds)."""
        for request in list(self.board.waiting()):
            await self._announce(request.id)

    async def run(self, tick_every: float = 1.0, announce_every: float = 5.0) -> None:
        """Tick and announce until cancelled; the desk's owner runs this as one task."""
        loop = asyncio.get_running_loop()
        announced = -math.inf
        while True:
            await self.tick()
            if loop.time() - announced >= announce_every:
                await self.announce_positions()
                announced = loop.time()
            await asyncio.sleep(tick_every)

    # -- views (no lock: they only read) -------------------------------------------------

    def teller_view(self, teller_id: str) -> Message:
        """A teller's state, open offer and current session, for their screen."""
        teller = self.board.tellers.get(teller_id)
        if teller is None:
            raise RoutingError(f"unknown teller {teller_id}")
        offer = self.board.offer_to(teller_id)
        call = next((c for c in self.calls.values() if c.teller_id == teller_id), None)
        return {
            "teller": teller_id,
            "state": teller.state.value,
            "offer": None if offer is None else offer.request_id,
            "session": None if call is None else call.session.id,
            "session_state": None if call is None else call.session.state.value,
        }

    def live_sessions_of_terminal(self, terminal_id: str) -> list[str]:
        """The terminal's sessions that still need it (waiting or in a call; not wrap-up)."""
        return [
            c.session.id
            for c in self.calls.values()
            if c.terminal_id == terminal_id and c.session.state is not State.WRAP_UP
        ]

    def call_of_teller(self, teller_id: str) -> str | None:
        """The session a teller is connected to now, if any."""
        return next(
            (
                c.session.id
                for c in self.calls.values()
                if c.teller_id == teller_id and c.session.state is State.CONNECTED
            ),
            None,
        )

    def watcher_of(self, session_id: str) -> str | None:
        """The teller who should hear about a session: offered it or serving it."""
        offer = self.board.offers.get(session_id)
        if offer is not None:
            return offer.teller_id
        call = self.calls.get(session_id)
        return None if call is None else call.teller_id

    def holder(self, token: str) -> Holder | None:
        """Who holds the live grant with this Janus token (for ``cloud.media.gate``);
        None for a token no live call granted (revoked, or another desk's)."""
        for session_id, call in self.calls.items():
            grants: list[tuple[Grant | None, str]] = [
                (call.customer, f"terminal:{call.terminal_id}")
            ]
            if call.teller is not None:
                grants.append((call.teller, call.teller.feed.removeprefix(f"{TELLER}-")))
            grants += [(g, account) for account, g in call.guests.items()]
            for grant, actor in grants:
                if grant is not None and grant.token == token:
                    actor = actor.split("~", 1)[0]  # a rejoined teller's feed: teller-<id>~<n>
                    return Holder(
                        session_id, grant.role, grant.feed, call.terminal_id, grant.room, actor
                    )
        return None

    def terminal_of(self, session_id: str) -> str | None:
        call = self.calls.get(session_id)
        return None if call is None else call.terminal_id

    def teller_of(self, session_id: str) -> str | None:
        """The teller currently on a session (None while it waits)."""
        return self._call(session_id).teller_id

    def call_facts(self, session_id: str) -> Message:
        """What the teller's offer said about a session, when it last connected (epoch s)
        and who listens in, for a page that lost all that (reloaded mid-call)."""
        call = self._call(session_id)
        connected = call.connected_at
        return {**_about(call), "connected_at": connected.timestamp() if connected else None}

    # -- internals -----------------------------------------------------------------------

    def _call(self, session_id: str) -> _Call:
        try:
            return self.calls[session_id]
        except KeyError:
            raise RoutingError(f"unknown session {session_id}") from None

    async def _unqueue(self, session_id: str, cause: str) -> None:
        """Take a request off the board, telling a teller who holds its offer."""
        if session_id not in self.board.requests:
            return
        offer = self.board.offers.get(session_id)
        self.board.abandon(session_id, self.clock().timestamp())
        if offer is not None:
            await self.notify(
                f"teller:{offer.teller_id}",
                {"type": "offer_withdrawn", "session": session_id, "cause": cause},
            )

    async def _save(self, record: Transition, call: _Call) -> None:
        if self.persist is not None:
            await self.persist(record, call.facts)

    async def _apply(
        self, session_id: str, event: Event, at: datetime, cause: str, teller: str | None = None
    ) -> None:
        call = self._call(session_id)
        call.session, record = st.apply(call.session, event, at, cause, teller)
        await self._save(record, call)

    async def _dispatch(self) -> None:
        now = self.clock()
        expired, ended = self.board.tick(now.timestamp())
        for offer in expired:
            await self._apply(
                offer.request_id, Event.OFFER_TIMEOUT, now, "no answer", offer.teller_id
            )
            await self.notify(
                f"teller:{offer.teller_id}",
                {"type": "offer_withdrawn", "session": offer.request_id, "cause": "timeout"},
            )
        for teller_id in ended:
            await self._close_wrap_up(teller_id, "wrap-up time limit")
        for offer in self.board.dispatch(now.timestamp()):
            call = self._call(offer.request_id)
            request = self.board.requests[offer.request_id]
            await self._apply(
                offer.request_id, Event.OFFER, now, f"ring {offer.ring}", offer.teller_id
            )
            await self.notify(
                f"teller:{offer.teller_id}",
                {
                    "type": "offer",
                    "session": offer.request_id,
                    "terminal": call.terminal_id,
                    "business": request.business,
                    "language": request.language,
                    "elderly": request.elderly,
                    "ring_back": call.away,
                    "expires": offer.expires,
                },
            )

    async def _announce(self, session_id: str) -> None:
        status = queue_status(self.board, session_id, self.clock().timestamp(), self.times)
        call = self._call(session_id)
        call.announced = status.position
        await self.notify(
            f"terminal:{call.terminal_id}",
            wire.Queued(session_id, status.position, status.expected_wait, status.ring).to_dict(),
        )

    def _grant(self, call: _Call, role: str) -> Grant:
        """A grant; a teller's on a feed this room has not seen yet."""
        assert call.node is not None and call.teller_id is not None
        rejoins = free_rejoin(call.teller_id, call.feeds)
        grant = make_grant(
            call.session.id, role, call.node.url, call.terminal_id, call.teller_id,
            self.clock(), self.turn, rejoins, self.media.room_pin(call.node, call.session.id),
        )  # fmt: skip
        if role == TELLER:
            call.feeds.add(grant.feed)
        return grant

    async def _release(self, call: _Call) -> None:
        """Revoke the participants' tokens and destroy the room (Janus closes recordings)."""
        node, call.node = call.node, None
        if node is None:
            return
        await self._revoke(node, call.customer, call.teller, *call.guests.values())
        call.customer = call.teller = None
        call.guests.clear()
        with contextlib.suppress(MediaError):  # a node that died took its room with it
            await self.media.close_room(call.session.id)
        if self.after_call is not None:
            await self.after_call(call.session.id, node)

    async def _revoke(self, node: Node | None, *grants: Grant | None) -> None:
        """Take these grants' tokens back. Best effort: on a node that died, or that already
        dropped a token, there is nothing left to take."""
        if node is None:
            return
        for grant in grants:
            if grant is not None:
                with contextlib.suppress(MediaError):
                    await self.media.revoke(node, grant.room, grant.token)

    async def _close_wrap_up(self, teller_id: str, cause: str = "wrap-up done") -> None:
        for call in list(self.calls.values()):
            if call.teller_id == teller_id and call.session.state is State.WRAP_UP:
                await self._close(call, cause)

    async def _close(self, call: _Call, cause: str) -> None:
        await self._apply(call.session.id, Event.CLOSE, self.clock(), cause, call.teller_id)
        handled = st.handle_time(call.session)
        if handled is not None:
            self.times.observe(call.business, handled.total_seconds())
        self.calls.pop(call.session.id)

    async def _sync(self) -> None:
        """Store what changed on the board since the last operation (``keep``)."""
        if self.keep is None:
            return
        for session_id, call in self.calls.items():
            kept = self._kept_of(call)
            if self._kept.get(session_id) != kept:
                await self.keep.call(session_id, kept)
                self._kept[session_id] = kept
        for session_id in [s for s in self._kept if s not in self.calls]:
            del self._kept[session_id]
        for teller_id, t in self.board.tellers.items():
            kept_teller = KeptTeller(t.state, t.state_since, t.idle_since, t.hold_until, t.missed)
            if self._kept_tellers.get(teller_id) != kept_teller:
                await self.keep.teller(teller_id, kept_teller)
                self._kept_tellers[teller_id] = kept_teller
        for business, seconds in self.times.learned().items():
            if self._kept_times.get(business) != seconds:
                await self.keep.handle_times(business, seconds)
                self._kept_times[business] = seconds

    def _kept_of(self, call: _Call) -> Kept:
        req = self.board.requests.get(call.session.id)
        queue = None if req is None else (req.arrived, req.rank, req.seq)
        excluded = () if req is None else tuple(sorted(req.excluded.items()))
        media = None
        if call.customer is not None or call.teller is not None:
            media = {
                "customer": None if call.customer is None else call.customer.message(),
                "teller": None if call.teller is None else call.teller.message(),
                "guests": {a: g.message() for a, g in sorted(call.guests.items())},
                "feeds": sorted(call.feeds),
            }
        node = None if call.node is None else call.node.name
        return Kept(queue, call.announced, node, media, excluded, call.ring_back)

    async def _tell_both(self, call: _Call, message: Message) -> None:
        await self.notify(f"terminal:{call.terminal_id}", message)
        if call.teller_id is not None:
            await self.notify(f"teller:{call.teller_id}", message)


def _give_media(call: _Call, media: Message | None) -> None:
    """The grants a previous desk kept for a call (``Desk._kept_of``'s ``media``)."""
    if not media:
        return
    customer, teller = media.get("customer"), media.get("teller")
    call.customer = None if customer is None else Grant.from_message(customer)
    call.teller = None if teller is None else Grant.from_message(teller)
    call.guests = {a: Grant.from_message(g) for a, g in (media.get("guests") or {}).items()}
    call.feeds = set(media.get("feeds") or ())


def _guest(session_id: str, account: str, present: bool) -> Message:
    """Told to the teller and the terminal: a third party joined (or left) the call."""
    return wire.Guest(session_id, account, present).to_dict()


def _about(call: _Call) -> Message:
    """A call as a supervisor's list and a reloaded teller page both describe it."""
    return {
        "session": call.session.id,
        "terminal": call.terminal_id,
        "business": call.business,
        "language": call.language,
        "elderly": call.elderly,
        "ring_back": call.ring_back,
        "guests": sorted(call.guests),
    }
