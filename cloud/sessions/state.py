"""Life cycle of one remote video teller session, as a transition table.

A customer at a terminal asks for a teller (``requested``), waits in the queue (``queued``),
a teller is offered the call (``offered``) and takes it (``connected``); after hang-up the
teller finishes the paperwork (``wrap-up``) and the session is ``closed``. Side exits:
``abandoned`` (the customer gave up), ``failed`` (media or signalling broke), and
``transferred`` (the teller handed the customer on; the session re-enters the queue for the
new skill, keeping one id and one history for the whole visit).

The rules are the ``TRANSITIONS`` table: ``(state, event) -> next state``. Applying an event
returns a new immutable ``Session`` and the ``Transition`` record (time, cause, teller) that
the caller persists as the audit trail. Times are timezone-aware datetimes passed in by the
caller; naive datetimes and times earlier than the last record are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from cloud.sessions.errors import ClockWentBack, InvalidTransition


class State(StrEnum):
    REQUESTED = "requested"
    QUEUED = "queued"
    OFFERED = "offered"
    CONNECTED = "connected"
    WRAP_UP = "wrap-up"
    CLOSED = "closed"
    ABANDONED = "abandoned"
    TRANSFERRED = "transferred"
    FAILED = "failed"


class Event(StrEnum):
    REQUEST = "request"  # the customer pressed "video teller"; creates the session
    ENQUEUE = "enqueue"  # routing accepted the request (or the transfer target's queue)
    OFFER = "offer"  # a teller is being offered the call
    ACCEPT = "accept"  # the offered teller took it; media is up
    DECLINE = "decline"  # the offered teller said no
    OFFER_TIMEOUT = "offer_timeout"  # the offered teller did not answer in time
    HANG_UP = "hang_up"  # either side ended the call
    TRANSFER = "transfer"  # the teller hands the customer to another skill/teller
    CLOSE = "close"  # the teller finished wrap-up
    ABANDON = "abandon"  # the customer left before being connected
    FAIL = "fail"  # media or signalling failure


S, E = State, Event

#: The whole rule set. Anything not listed raises InvalidTransition.
TRANSITIONS: Final[dict[tuple[State, Event], State]] = {
    (S.REQUESTED, E.ENQUEUE): S.QUEUED,
    (S.REQUESTED, E.ABANDON): S.ABANDONED,
    (S.REQUESTED, E.FAIL): S.FAILED,
    (S.QUEUED, E.OFFER): S.OFFERED,
    (S.QUEUED, E.ABANDON): S.ABANDONED,
    (S.QUEUED, E.FAIL): S.FAILED,
    (S.OFFERED, E.ACCEPT): S.CONNECTED,
    # A declined or unanswered offer goes back to the queue, keeping its place (routing's job).
    (S.OFFERED, E.DECLINE): S.QUEUED,
    (S.OFFERED, E.OFFER_TIMEOUT): S.QUEUED,
    (S.OFFERED, E.ABANDON): S.ABANDONED,
    (S.OFFERED, E.FAIL): S.FAILED,
    (S.CONNECTED, E.HANG_UP): S.WRAP_UP,
    (S.CONNECTED, E.TRANSFER): S.TRANSFERRED,
    (S.CONNECTED, E.FAIL): S.FAILED,
    (S.TRANSFERRED, E.ENQUEUE): S.QUEUED,
    (S.TRANSFERRED, E.ABANDON): S.ABANDONED,
    (S.TRANSFERRED, E.FAIL): S.FAILED,
    (S.WRAP_UP, E.CLOSE): S.CLOSED,
}

TERMINAL: Final = frozenset({S.CLOSED, S.ABANDONED, S.FAILED})


@dataclass(frozen=True, slots=True)
class Transition:
    """One audit record: what happened, when, why, and which teller was involved."""

    session_id: str
    at: datetime
    event: Event
    from_state: State | None  # None only on the first record (the request)
    to_state: State
    cause: str = ""
    teller_id: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A session's current state and its full history (oldest first)."""

    id: str
    state: State
    history: tuple[Transition, ...] = ()

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def started_at(self) -> datetime | None:
        return self.history[0].at if self.history else None


def _check_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: pass a timezone-aware time")


def new_session(session_id: str, at: datetime, cause: str = "customer request") -> Session:
    """A session in ``requested``, with a first record so wait times have a start."""
    _check_aware(at)
    first = Transition(session_id, at, E.REQUEST, None, S.REQUESTED, cause)
    return Session(session_id, S.REQUESTED, (first,))


def allowed_events(state: State) -> frozenset[Event]:
    """Events the table accepts in ``state`` (for UIs and for validation messages)."""
    return frozenset(e for (s, e) in TRANSITIONS if s is state)


def apply(
    session: Session,
    event: Event,
    at: datetime,
    cause: str = "",
    teller_id: str | None = None,
) -> tuple[Session, Transition]:
    """Apply one event; returns the new session and the record to persist.

    Raises InvalidTransition when the table has no entry, ClockWentBack when ``at`` is
    earlier than the last record, ValueError on a naive datetime.
    """
    _check_aware(at)
    event = Event(event)  # persisted records come back as plain strings
    nxt = TRANSITIONS.get((session.state, event))
    if nxt is None:
        raise InvalidTransition(session.id, session.state, event)
    if session.history and at < session.history[-1].at:
        raise ClockWentBack(
            f"session {session.id}: {event} at {at.isoformat()} is before "
            f"{session.history[-1].at.isoformat()}"
        )
    record = Transition(session.id, at, event, session.state, nxt, cause, teller_id)
    return replace(session, state=nxt, history=(*session.history, record)), record


def replay(session_id: str, records: tuple[Transition, ...] | list[Transition]) -> Session:
    """Rebuild a session from persisted records, re-checking every step against the table."""
    if not records or Event(records[0].event) is not E.REQUEST:
        raise ValueError(f"session {session_id}: records must start with a request")
    session = new_session(session_id, records[0].at, records[0].cause)
    for rec in records[1:]:
        session, _ = apply(session, rec.event, rec.at, rec.cause, rec.teller_id)
    return session


def wait_time(session: Session) -> timedelta | None:
    """Request to first connection (the customer's answer time); None if never connected."""
    connected = next((r.at for r in session.history if r.to_state is S.CONNECTED), None)
    start = session.started_at
    return None if connected is None or start is None else connected - start


def handle_time(session: Session) -> timedelta | None:
    """Connected to closed, wrap-up included (Amazon's "agent active time"); None if open.

    A transferred session counts from its last connection: that teller's share of the work.
    """
    if session.state is not S.CLOSED:
        return None
    connected = [r.at for r in session.history if r.to_state is S.CONNECTED]
    return session.history[-1].at - connected[-1]
