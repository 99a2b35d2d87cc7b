"""Persisting teller sessions with tortoise: the desk's ``persist`` and the way back.

``save`` writes one transition and brings the session row up to date in one database
transaction; ``load`` rebuilds a ``state.Session`` by replaying the stored records, so a
restarted cloud sees exactly the history it wrote (and a tampered history fails replay).
The ``set_*`` functions store what arrives beside the transitions: the terminal's request
details, liveness verdict and rating, the teller's outcome, the archived recording.

Fenced: the writes that change who has a call or a place in the queue (``save``: every
transition; ``keep_call``, ``keep_teller``: the board; ``keep_handle_times``,
``keep_absences``: the desk's timers) go through ``cloud.lease.fenced``, so once a standby
has taken the lease a paused old leader's write is refused (``LeaseLost``) instead of
landing on the new leader's board. The ``set_*`` writes (facts the terminal or the teller
reported, the archived recording) are not fenced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError

from cloud.lease import fenced
from cloud.sessions import state as st
from cloud.sessions.desk import Kept, KeptTeller, SessionFacts
from cloud.sessions.models import (
    DeskAbsence,
    DeskHandleTime,
    DeskTeller,
    HeldIdRead,
    SessionTransition,
    TellerSession,
)
from cloud.sessions.routing import TellerState
from cloud.sessions.state import Event, State, Transition


async def save(record: Transition, facts: SessionFacts) -> None:
    """Store one transition; the first one (the request) creates the session row.

    The transaction writes first (no read before it): on a SQLite file shared by API
    replicas, a transaction that reads and then writes is refused at once ("database is
    locked") when another replica wrote in between, where a first write waits its turn.
    Fenced: ``fenced`` opens it with a write to the lease row (``LeaseLost`` if the lease
    has changed hands)."""
    async with fenced():
        values: dict[str, Any] = {"state": record.to_state.value, "updated_at": record.at}
        if record.teller_id:
            values["teller_id"] = record.teller_id
        if facts.janus_node:
            values["janus_node"] = facts.janus_node
        if not await TellerSession.filter(id=record.session_id).update(**values):
            await TellerSession.create(
                id=record.session_id,
                terminal_id=facts.terminal_id,
                business=facts.business,
                language=facts.language,
                elderly=facts.elderly,
                requested_at=record.at,
                **values,
            )
        await SessionTransition.create(
            session_id=record.session_id,
            at=record.at,
            event=record.event.value,
            from_state=None if record.from_state is None else record.from_state.value,
            to_state=record.to_state.value,
            cause=record.cause[:255],
            teller_id=record.teller_id,
        )


async def load(session_id: str) -> st.Session:
    """The session as its stored history says; ValueError/InvalidTransition if inconsistent."""
    rows = await SessionTransition.filter(session_id=session_id).order_by("id")
    return st.replay(session_id, [_record(r) for r in rows])


def _record(r: SessionTransition) -> Transition:
    return Transition(
        r.session_id,  # type: ignore[attr-defined]
        r.at,
        Event(r.event),
        None if r.from_state is None else State(r.from_state),
        State(r.to_state),
        r.cause,
        r.teller_id,
    )


#: Sessions whose histories one query reads (well under SQLite's 999 parameters).
_HISTORIES_PER_QUERY = 500


async def _histories(session_ids: list[str]) -> dict[str, list[Transition]]:
    """The stored histories of many sessions, in a few queries (a desk taking over reads
    hundreds; one query each made its takeover wait for hundreds of round trips)."""
    out: dict[str, list[Transition]] = {sid: [] for sid in session_ids}
    for i in range(0, len(session_ids), _HISTORIES_PER_QUERY):
        chunk = session_ids[i : i + _HISTORIES_PER_QUERY]
        for r in await SessionTransition.filter(session_id__in=chunk).order_by("id"):
            out[r.session_id].append(_record(r))  # type: ignore[attr-defined]
    return out


#: The cause a restarted desk records on the sessions its predecessor left open.
RESTARTED = "desk restarted"


@dataclass(frozen=True, slots=True)
class LeftOpen:
    """A session a previous desk left open, as ``end_unfinished`` ended it: who to tell
    and which Janus room (if any) holds its recording."""

    session_id: str
    terminal_id: str
    teller_id: str | None
    #: The node its room was opened on; None if it never got a room.
    janus_node: str | None
    #: Its state when the desk died (``wrap-up`` sessions close, the rest fail).
    was: State
    #: Already archived (by the previous desk, before it died).
    archived: bool


async def end_unfinished(
    now: datetime, cause: str = RESTARTED, spare: frozenset[str] = frozenset()
) -> list[LeftOpen]:
    """Close out sessions a previous desk left open (its board died with its process),
    except those in ``spare`` (the ones a desk taking over adopted): wrap-ups close,
    everything else fails. Returns what was ended, oldest first."""
    ended = []
    open_states = [s.value for s in State if s not in st.TERMINAL]
    for row in await TellerSession.filter(state__in=open_states).order_by("requested_at"):
        if row.id in spare:
            continue
        session = await load(row.id)
        event = Event.CLOSE if session.state is State.WRAP_UP else Event.FAIL
        at = max(now, session.history[-1].at)
        _, record = st.apply(session, event, at, cause, row.teller_id)
        facts = SessionFacts(row.terminal_id, row.business, row.language, row.elderly)
        await save(record, facts)
        ended.append(
            LeftOpen(
                row.id,
                row.terminal_id,
                row.teller_id,
                row.janus_node,
                session.state,
                row.recording_path is not None,
            )
        )
    return ended


async def finished_of_terminal(session_id: str, terminal_id: str) -> tuple[State, str] | None:
    """The final state of ``terminal_id``'s session ``session_id`` and the cause it ended
    with, if it is over (closed, failed, abandoned); None if there is no such finished
    session of that terminal."""
    row = await TellerSession.get_or_none(id=session_id, terminal_id=terminal_id)
    if row is None or State(row.state) not in st.TERMINAL:
        return None
    last = await SessionTransition.filter(session_id=session_id).order_by("-id").first()
    return State(row.state), "" if last is None else last.cause


async def set_recording(session_id: str, path: str, sha256: str) -> None:
    await TellerSession.filter(id=session_id).update(recording_path=path, recording_sha256=sha256)


async def recording_of(session_id: str) -> tuple[str, str] | None:
    """The archived recording's path and SHA-256, None until it is archived."""
    row = await TellerSession.get_or_none(id=session_id)
    if row is None or not row.recording_path or not row.recording_sha256:
        return None
    return row.recording_path, row.recording_sha256


async def set_request(session_id: str, request_id: str, customer: dict[str, str] | None) -> None:
    """What the terminal's request said besides routing facts (its id, the ID card read)."""
    customer = customer or {}
    await TellerSession.filter(id=session_id).update(
        request_id=request_id,
        customer_name=customer.get("name"),
        customer_id_number=customer.get("id_number"),
    )


async def request_known(request_id: str) -> bool:
    """Whether a session was already queued for this terminal request id (a replay)."""
    return await TellerSession.filter(request_id=request_id).exists()


@dataclass(frozen=True)
class HeldRead:
    """A before-queue ID read held for a session (``models.HeldIdRead``)."""

    request_id: str
    session_id: str
    terminal_id: str
    sealed: str
    masked: dict[str, Any]


async def drop_expired_id_reads(now: datetime) -> int:
    """Delete held reads whose time is up (never taken); how many."""
    return await HeldIdRead.filter(expires_at__lte=now).delete()


async def hold_id_read(read: HeldRead, now: datetime, expires_at: datetime) -> bool:
    """Keep ``read`` for its session until it is taken or ``expires_at``. False if a read for
    that request (or that session) is already held: a request id is used once. Expired
    rows are deleted on the way."""
    await drop_expired_id_reads(now)
    try:
        await HeldIdRead.create(
            request_id=read.request_id,
            session_id=read.session_id,
            terminal_id=read.terminal_id,
            sealed=read.sealed,
            masked=read.masked,
            held_at=now,
            expires_at=expires_at,
        )
    except IntegrityError:
        return False
    return True


async def held_id_read(session_id: str, now: datetime) -> HeldRead | None:
    """The read held for ``session_id``, None if none is held or it has expired."""
    row = await HeldIdRead.get_or_none(session_id=session_id, expires_at__gt=now)
    if row is None:
        return None
    return HeldRead(row.request_id, row.session_id, row.terminal_id, row.sealed, row.masked)


async def take_id_read(session_id: str, now: datetime) -> HeldRead | None:
    """Claim the read held for ``session_id``: it is deleted, and only the caller whose
    delete removed it gets it (another replica, or a second use, gets None). Expired rows
    are deleted on the way, never returned."""
    await drop_expired_id_reads(now)
    held = await held_id_read(session_id, now)
    if held is None:
        return None
    gone = await HeldIdRead.filter(request_id=held.request_id, expires_at__gt=now).delete()
    return held if gone == 1 else None


async def set_liveness(session_id: str, terminal_id: str, verdict: dict[str, Any]) -> bool:
    """Store the agent's liveness verdict; False if no such session of that terminal."""
    n = await TellerSession.filter(id=session_id, terminal_id=terminal_id).update(liveness=verdict)
    return bool(n)


async def set_rating(session_id: str, terminal_id: str, score: int) -> bool:
    """Store the customer's rating (1-5); False if no such session of that terminal."""
    n = await TellerSession.filter(id=session_id, terminal_id=terminal_id).update(rating=score)
    return bool(n)


async def set_outcome(session_id: str, resolved: bool) -> None:
    """The teller's outcome: was the matter resolved at this first contact?"""
    await TellerSession.filter(id=session_id).update(resolved=resolved)


async def keep_call(session_id: str, kept: Kept) -> None:
    """Store an open session's place on the board and its call's media (``Desk.keep``)."""
    values: dict[str, Any] = {
        "queue_arrived": None if kept.queue is None else kept.queue[0],
        "queue_rank": None if kept.queue is None else kept.queue[1],
        "queue_seq": None if kept.queue is None else kept.queue[2],
        "announced": kept.announced,
        "media": kept.media,
        "excluded": dict(kept.excluded) or None,
        "ring_back": kept.ring_back,
    }
    if kept.node is not None:  # a released room's node stays: recovery closes it
        values["janus_node"] = kept.node
    async with fenced():
        await TellerSession.filter(id=session_id).update(**values)


async def keep_teller(teller_id: str, kept: KeptTeller) -> None:
    """Store a teller's state on the board (``Desk.keep``)."""
    values = {
        "state": kept.state.value,
        "state_since": kept.state_since,
        "idle_since": kept.idle_since,
        "hold_until": kept.hold_until,
        "missed": kept.missed,
    }
    async with fenced():
        if not await DeskTeller.filter(id=teller_id).update(**values):  # a write first
            await DeskTeller.create(id=teller_id, **values)


async def keep_handle_times(business: str, seconds: tuple[float, ...]) -> None:
    """Store the handle times the desk has learned for ``business`` (oldest first)."""
    async with fenced():
        if not await DeskHandleTime.filter(business=business).update(seconds=list(seconds)):
            await DeskHandleTime.create(business=business, seconds=list(seconds))


async def handle_times() -> dict[str, list[float]]:
    """The handle times the previous desk had learned, per business (oldest first)."""
    return {row.business: [float(s) for s in row.seconds] for row in await DeskHandleTime.all()}


async def keep_absences(marked: dict[str, float], cleared: list[str]) -> None:
    """Store the grace-period watch's changes (``watch.Watch.sync``): who went missing
    since when (``terminal:<id>``/``teller:<id>`` -> epoch s), who is no longer missing."""
    async with fenced():
        if cleared:
            await DeskAbsence.filter(id__in=cleared).delete()
        for who, since in marked.items():
            if not await DeskAbsence.filter(id=who).update(since=since):
                await DeskAbsence.create(id=who, since=since)


async def absences() -> dict[str, float]:
    """Who the previous desk's watch had missing, and since when (``keep_absences``)."""
    return {row.id: row.since for row in await DeskAbsence.all()}


class Keeper:
    """``Desk``'s ``keep``: the functions above."""

    async def call(self, session_id: str, kept: Kept) -> None:
        await keep_call(session_id, kept)

    async def teller(self, teller_id: str, kept: KeptTeller) -> None:
        await keep_teller(teller_id, kept)

    async def handle_times(self, business: str, seconds: tuple[float, ...]) -> None:
        await keep_handle_times(business, seconds)


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A session the previous desk left open, with everything it kept about it."""

    session: st.Session
    facts: SessionFacts
    #: The teller serving it or wrapping it up (the row's last teller).
    teller_id: str | None
    kept: Kept


async def open_board() -> tuple[list[OpenSession], dict[str, KeptTeller]]:
    """The board the previous desk left: its open sessions (oldest first; a history that
    fails replay is left out, for ``end_unfinished``) and its tellers' states."""
    open_states = [s.value for s in State if s not in st.TERMINAL]
    sessions = []
    rows = await TellerSession.filter(state__in=open_states).order_by("requested_at")
    histories = await _histories([row.id for row in rows])
    for row in rows:
        try:
            session = st.replay(row.id, histories[row.id])
        except ValueError:
            continue
        queue = None
        if None not in (row.queue_arrived, row.queue_rank, row.queue_seq):
            queue = (float(row.queue_arrived), float(row.queue_rank), int(row.queue_seq))
        excluded = tuple(sorted((t, float(u)) for t, u in (row.excluded or {}).items()))
        kept = Kept(queue, row.announced, row.janus_node, row.media, excluded, row.ring_back)
        facts = SessionFacts(row.terminal_id, row.business, row.language, row.elderly)
        sessions.append(OpenSession(session, facts, row.teller_id, kept))
    tellers = {
        t.id: KeptTeller(TellerState(t.state), t.state_since, t.idle_since, t.hold_until, t.missed)
        for t in await DeskTeller.all()
    }
    return sessions, tellers
