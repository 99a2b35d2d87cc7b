"""A UDP relay that puts a weak link (``impair.Link``) between its clients and one server.

Put in front of coturn, it makes a village 4G link on loopback: the terminal is given the
relay's address as its TURN server, and with relay-only ICE every packet of the call (TURN
control and the media it carries) passes through it. Each client address gets its own
upstream socket (so the server sees one 5-tuple per client, as through a NAT), but all
clients share one uplink and one downlink ``Link``: a terminal's publisher and subscriber
compete for the same thin link, as they do in the village.

The shell only receives, hands packets to the pure core with the loop's clock, and sends
what is due when a timer fires. ``outage(seconds)`` cuts both directions from now.
Loopback only: the relay binds 127.0.0.1 and is given the upstream address explicitly.
"""

from __future__ import annotations

import asyncio
import random
import threading

from cuntong.servers.impair import Impairment, Link

__all__ = ["RelayThread", "UdpRelay"]

Address = tuple[str, int]


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.relay._from_client(data, addr)


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay, client: Address) -> None:
        self.relay, self.client = relay, client

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.relay._from_server(data, self.client)


class UdpRelay:
    """``async with UdpRelay(server, up, down) as relay:``; clients send to ``relay.address``."""

    def __init__(
        self,
        server: Address,
        up: Impairment,
        down: Impairment,
        seed: int = 0,
        listen: Address = ("127.0.0.1", 0),
    ) -> None:
        self.server, self.listen = server, listen
        rng = random.Random(seed)
        self.up = Link(up, random.Random(rng.random()))  # terminal -> server
        self.down = Link(down, random.Random(rng.random()))  # server -> terminal
        self._listener: asyncio.DatagramTransport | None = None
        self._upstreams: dict[Address, asyncio.DatagramTransport | None] = {}
        self._pending: dict[Address, list[bytes]] = {}
        self._timers: dict[str, asyncio.TimerHandle | None] = {"up": None, "down": None}
        self.address: Address = listen

    def now(self) -> float:
        """The loop's clock: the timers that deliver packets run on it too."""
        return asyncio.get_running_loop().time()

    async def __aenter__(self) -> UdpRelay:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Listener(self), local_addr=self.listen
        )
        self._listener = transport
        self.address = transport.get_extra_info("sockname")[:2]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for timer in self._timers.values():
            if timer is not None:
                timer.cancel()
        for upstream in self._upstreams.values():
            if upstream is not None:
                upstream.close()
        if self._listener is not None:
            self._listener.close()

    def outage(self, seconds: float) -> None:
        """Cut both directions for ``seconds`` from now."""
        start = self.now()
        self.up.down(start, start + seconds)
        self.down.down(start, start + seconds)

    # --- the shell around the two links ------------------------------------------------

    def _from_client(self, data: bytes, client: Address) -> None:
        if client not in self._upstreams:
            self._upstreams[client] = None  # opening; packets wait in _pending
            self._pending[client] = []
            asyncio.get_running_loop().create_task(self._open(client))
        if self.up.offer(data, self.now(), client):
            self._arm("up")

    async def _open(self, client: Address) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Upstream(self, client), remote_addr=self.server
        )
        self._upstreams[client] = transport
        for data in self._pending.pop(client, []):
            transport.sendto(data)

    def _from_server(self, data: bytes, client: Address) -> None:
        if self.down.offer(data, self.now(), client):
            self._arm("down")

    def _arm(self, direction: str) -> None:
        link = self.up if direction == "up" else self.down
        when = link.next_due()
        timer = self._timers[direction]
        if when is None or (timer is not None and timer.when() <= when):
            return
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._timers[direction] = loop.call_at(when, self._flush, direction)

    def _flush(self, direction: str) -> None:
        self._timers[direction] = None
        link = self.up if direction == "up" else self.down
        for data, client in link.due(self.now()):
            assert isinstance(client, tuple)
            if direction == "up":
                upstream = self._upstreams.get(client)
                if upstream is None:
                    self._pending.setdefault(client, []).append(data)
                else:
                    upstream.sendto(data)
            elif self._listener is not None:
                self._listener.sendto(data, client)
        self._arm(direction)


class RelayThread:
    """A ``UdpRelay`` on its own thread and event loop, at the priority the thread was
    started with: the link is not part of the process whose threads it carries. The weak-link
    bench raises the terminal's loop thread (``edge.teller.priority``); the relay in that
    loop would be raised with it and the network would get the terminal's priority.

    Same surface as ``UdpRelay``: ``address``, ``up``/``down`` (their counters read across
    threads: plain ints), ``outage`` (handed to the relay's loop)."""

    def __init__(self, server: Address, up: Impairment, down: Impairment, seed: int = 0) -> None:
        self.relay = UdpRelay(server, up, down, seed)
        self.up, self.down = self.relay.up, self.relay.down
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="udprelay", daemon=True)

    @property
    def address(self) -> Address:
        return self.relay.address

    def _run(self) -> None:
        async def serve() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with self.relay:
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(serve())
        except BaseException as err:  # handed to the starting thread
            self._error = err
        finally:
            self._ready.set()

    async def __aenter__(self) -> RelayThread:
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, 30)
        if self._error is not None or self._loop is None:
            raise RuntimeError(f"the relay thread did not start: {self._error!r}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, 30)

    def outage(self, seconds: float) -> None:
        """Cut both directions for ``seconds`` from now (on the relay's loop)."""
        assert self._loop is not None, "not started"
        self._loop.call_soon_threadsafe(self.relay.outage, seconds)
