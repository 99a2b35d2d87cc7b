"""After a desk restart or takeover: what to do about the sessions the previous desk left open.

A desk taking over (a new leader, ``cloud.lease``; or the same replica restarted) first
adopts what the previous desk kept in the database (``store.open_board``, written as the
board changed through ``Desk.keep``): ``why_not`` (pure) says whether a session can be
adopted, ``adopt`` checks each live call's room is still on its Janus node and returns
``desk.Adopted`` records for ``Desk.adopt``:

- a waiting customer (``queued``, or ``offered``: the offer is withdrawn) keeps its place:
  same arrival, rank and sequence number on the new board, and is told its position again;
- a live call (``connected``, or a transferred customer waiting in the room) keeps its room,
  its grants (tokens, feeds, guests) and so its recording; the teller stays busy;
- a wrap-up stays with its teller, whose wrap-up time limit runs on from when it began.

The rest (a session without a stored place, written before migration 5; a call whose room
is gone or whose node does not answer; a bare ``requested``) is ended as after a restart:
``store.end_unfinished`` ends them in the database (wrap-ups close, the rest fail with cause
``desk restarted``) and returns each as a ``store.LeftOpen``. This module does the rest:

- ``notices`` (pure) says who is told what: the customer at the terminal ``failed`` (a
  session that was waiting, offered or in a call), the teller ``failed`` (or ``ended`` for
  a wrap-up, whose customer had already been told), through the one call codec;
- ``close_rooms`` destroys each Janus room such a session had (Janus then closes its
  ``.mjr`` recordings) and hands the room to the archiver, unless it was archived already.
  A call's row learns its node only at the transition after ``accept`` (the accept is
  stored before the room opens), so for a session without one every node is asked;
- ``tell`` holds the tellers' messages for their next connection (their page load opens
  one) and sends the terminals' once the desk's MQTT link is up.

Not done here: the grants' Janus tokens of an ended call are not revoked; they stop being
useful once the room is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from cloud.media.errors import MediaError
from cloud.media.nodes import Node
from cloud.media.pool import JanusPool
from cloud.sessions import store
from cloud.sessions.desk import Adopted
from cloud.sessions.grants import Message
from cloud.sessions.outbox import Outbox
from cloud.sessions.state import State
from cloud.sessions.store import LeftOpen, OpenSession
from common.wire import call as wire

log = logging.getLogger("cuntong.desk.recovery")

#: The cause both parties are told (and the one ``store.end_unfinished`` records).
CAUSE = store.RESTARTED

AfterCall = Callable[[str, Node], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Notice:
    """Who is told what about one session ended by the restart."""

    session_id: str
    terminal: Message | None
    teller_id: str | None
    teller: Message | None


def why_not(left: OpenSession) -> str | None:
    """Why this session cannot be adopted by a desk taking over; None if it can."""
    state, kept = left.session.state, left.kept
    if state in (State.QUEUED, State.OFFERED):
        if kept.queue is None:
            return "no stored place in the queue"
        if kept.media and not kept.node:
            return "a transferred customer's room has no stored node"
        return None
    if state is State.CONNECTED:
        media = kept.media or {}
        if not kept.node or not media.get("customer") or not media.get("teller"):
            return "no stored room or grants"
        return None if left.teller_id else "no teller"
    if state is State.WRAP_UP:
        return None if left.teller_id else "no teller"
    return f"a session {state} is not adopted"


#: Rooms asked about at once while adopting (each is one request to its Janus node).
ROOMS_AT_ONCE = 16


async def adopt(left_open: Iterable[OpenSession], pool: JanusPool) -> list[Adopted]:
    """What a desk taking over adopts of what the previous one left: each adoptable
    session, with its room's node for one with media (only if the node still has it).
    The rooms are asked about ``ROOMS_AT_ONCE`` at a time (fifty live calls asked one
    after another held the takeover up); the result keeps the sessions' order."""
    limit = asyncio.Semaphore(ROOMS_AT_ONCE)

    async def one(left: OpenSession) -> Adopted | None:
        why = why_not(left)
        node = None
        if why is None and left.kept.media and left.session.state is not State.WRAP_UP:
            assert left.kept.node is not None
            async with limit:
                node = await pool.adopt_room(left.kept.node, left.session.id)
            if node is None:
                why = f"its room is not on {left.kept.node} any more"
        if why is not None:
            log.warning("session %s (%s) not adopted: %s", left.session.id, left.session.state, why)
            return None
        return Adopted(left.session, left.facts, left.teller_id, left.kept, node)

    return [a for a in await asyncio.gather(*(one(left) for left in left_open)) if a]


def notices(left: LeftOpen, cause: str = CAUSE) -> Notice:
    if left.was is State.WRAP_UP:  # the customer heard ``ended`` when the call ended
        to_teller = wire.Ended(left.session_id, cause).to_dict()
        return Notice(left.session_id, None, left.teller_id, to_teller)
    failed = wire.Failed(left.session_id, cause).to_dict()
    return Notice(left.session_id, failed, left.teller_id, failed if left.teller_id else None)


async def close_rooms(left_open: Iterable[LeftOpen], pool: JanusPool, after_call: AfterCall) -> int:
    """Destroy the rooms the ended sessions had and queue their recordings for archiving.
    Returns how many were queued. A node that does not answer is logged; its recording
    is still queued (what Janus wrote so far is on disk)."""
    queued = 0
    for left in left_open:
        name = left.janus_node
        if name is None:  # an accepted call's row gets its node only at the next transition
            found = await pool.find_room(left.session_id)
            if found is None:
                continue  # it never had a room (waiting, offered), or its node is down
            name = found.name
        node = pool.registry.nodes.get(name)
        try:
            node = await pool.close_left_room(name, left.session_id) or node
        except MediaError as err:
            log.warning("session %s: room on %s not closed: %s", left.session_id, name, err)
        if node is None:
            log.error("session %s: its node %s is not configured", left.session_id, name)
            continue
        if not left.archived:
            await after_call(left.session_id, node)
            queued += 1
    return queued


async def tell(left_open: Sequence[LeftOpen], outbox: Outbox, link_up: asyncio.Event) -> None:
    """Tell tellers (held for their next connection) and terminals (once the link is up)."""
    todo = [notices(left) for left in left_open]
    for notice in todo:
        if notice.teller_id is not None and notice.teller is not None:
            await outbox.hold(notice.teller_id, notice.teller)
    await link_up.wait()
    for notice, left in zip(todo, left_open, strict=True):
        if notice.terminal is not None:
            await outbox.notify(f"terminal:{left.terminal_id}", notice.terminal)
