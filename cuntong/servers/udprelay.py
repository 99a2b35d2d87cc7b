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

from cuntong.servers.impair import Impairment, Link

__all__ = ["UdpRelay"]

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
