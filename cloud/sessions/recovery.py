"""After a desk restart: what to do about the sessions the previous process left open.

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

Not done here: the grants' Janus tokens of the old process are not revoked (it kept them in
memory only); they stop being useful once the room is gone. Keeping a customer's place in
the queue across the restart is the HA issue's job, not this one's.
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
from cloud.sessions.grants import Message
from cloud.sessions.outbox import Outbox
from cloud.sessions.state import State
from cloud.sessions.store import LeftOpen
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
