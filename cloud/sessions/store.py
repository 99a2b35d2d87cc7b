"""Persisting teller sessions with tortoise: the desk's ``persist`` and the way back.

``save`` writes one transition and brings the session row up to date in one database
transaction; ``load`` rebuilds a ``state.Session`` by replaying the stored records, so a
restarted cloud sees exactly the history it wrote (and a tampered history fails replay).
The ``set_*`` functions store what arrives beside the transitions: the terminal's request
details, liveness verdict and rating, the teller's outcome, the archived recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from cloud.sessions import state as st
from cloud.sessions.desk import SessionFacts
from cloud.sessions.models import SessionTransition, TellerSession
from cloud.sessions.state import Event, State, Transition


async def save(record: Transition, facts: SessionFacts) -> None:
    """Store one transition; the first one (the request) creates the session row."""
    async with in_transaction():
        row = await TellerSession.get_or_none(id=record.session_id)
        if row is None:
            row = await TellerSession.create(
                id=record.session_id,
                terminal_id=facts.terminal_id,
                business=facts.business,
                language=facts.language,
                elderly=facts.elderly,
                state=record.to_state.value,
                requested_at=record.at,
                updated_at=record.at,
            )
        row.state = record.to_state.value
        row.updated_at = record.at
        row.teller_id = record.teller_id or row.teller_id
        row.janus_node = facts.janus_node or row.janus_node
        await row.save()
        await SessionTransition.create(
            session=row,
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
    records = [
        Transition(
            session_id,
            r.at,
            Event(r.event),
            None if r.from_state is None else State(r.from_state),
            State(r.to_state),
            r.cause,
            r.teller_id,
        )
        for r in rows
    ]
    return st.replay(session_id, records)


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


async def end_unfinished(now: datetime, cause: str = RESTARTED) -> list[LeftOpen]:
    """Close out sessions a previous desk left open (its board died with its process):
    wrap-ups close, everything else fails. Returns what was ended, oldest first."""
    ended = []
    open_states = [s.value for s in State if s not in st.TERMINAL]
    for row in await TellerSession.filter(state__in=open_states).order_by("requested_at"):
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
