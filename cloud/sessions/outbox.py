"""Delivering the desk's messages: tellers' live connections, and a sink for terminals.

``Outbox.notify`` is the desk's ``notify``. ``teller:<id>`` messages go to every open
connection of that teller (a WebSocket handler holds a queue from ``subscribe``);
``terminal:<id>`` messages go to the injected terminal sink (the MQTT bridge, later).
A teller with no connection misses the message; for offers that is safe, the offer
times out and routing moves on. What a teller must not miss while away (their call ended
by a desk restart) is ``hold``-ed: delivered now if they are connected, else on their next
connection (a page load opens one). A connection that stops reading loses its oldest
messages rather than holding the desk up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator

from cloud.sessions.grants import Message

TerminalSink = Callable[[str, Message], Awaitable[None]]


class Outbox:
    def __init__(self, terminal_sink: TerminalSink | None = None, queue_size: int = 100) -> None:
        self.terminal_sink = terminal_sink
        self.queue_size = queue_size
        self._tellers: dict[str, set[asyncio.Queue[Message]]] = {}
        self._held: dict[str, list[Message]] = {}

    async def notify(self, address: str, message: Message) -> None:
        kind, _, ident = address.partition(":")
        if kind == "terminal":
            if self.terminal_sink is not None:
                await self.terminal_sink(ident, message)
            return
        if kind != "teller":
            raise ValueError(f"unknown address {address!r}")
        for queue in self._tellers.get(ident, ()):
            if queue.full():
                queue.get_nowait()  # drop the oldest: a stalled reader must not block the desk
            queue.put_nowait(message)

    async def hold(self, teller_id: str, message: Message) -> None:
        """Tell a teller now, or on their next connection if none is open (the latest
        ``queue_size`` such messages are kept)."""
        if self.connected(teller_id):
            await self.notify(f"teller:{teller_id}", message)
            return
        held = self._held.setdefault(teller_id, [])
        held.append(message)
        del held[: -self.queue_size]

    def connected(self, teller_id: str) -> bool:
        return bool(self._tellers.get(teller_id))

    @contextlib.contextmanager
    def subscribe(self, teller_id: str) -> Iterator[asyncio.Queue[Message]]:
        """A queue receiving the teller's messages while the block runs."""
        queue: asyncio.Queue[Message] = asyncio.Queue(self.queue_size)
        for message in self._held.pop(teller_id, []):
            queue.put_nowait(message)
        self._tellers.setdefault(teller_id, set()).add(queue)
        try:
            yield queue
        finally:
            self._tellers[teller_id].discard(queue)
            if not self._tellers[teller_id]:
                del self._tellers[teller_id]
