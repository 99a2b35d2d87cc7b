"""Simulated terminals: one real MQTT 5 connection each, answering commands by a behaviour.

They speak the agent's protocol in development mode (unsigned commands): retained online
status with an offline will, a subscription to ``cmd/+``, and a reply per command on the
MQTT 5 response topic with the same correlation data.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from common import envelope
from common.topics import Channel, command_filter, topic
from fleet.sim import mqtt5

Result = tuple[bool, dict[str, Any]]
Behaviour = Callable[[str, str, dict[str, Any]], Result | Awaitable[Result]]
KEEPALIVE_S = 60


def always_ok(tid: str, name: str, args: dict[str, Any]) -> Result:
    return True, {"echo": args}


class SimTerminal:
    def __init__(
        self,
        tid: str,
        host: str,
        port: int,
        behaviour: Behaviour = always_ok,
        region: Mapping[str, str] | None = None,
        versions: Mapping[str, str] | None = None,
        hw_model: str = "SIM-1",
    ) -> None:
        self.tid, self.host, self.port = tid, host, port
        self.behaviour = behaviour
        self.region = dict(region or {})
        self.versions = dict(versions or {"agent": "0.1.0"})
        self.hw_model = hw_model
        self.received: list[tuple[str, float]] = []
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._packet_id = 0

    def _status(self, online: bool) -> bytes:
        return envelope.Status(
            self.tid, online, int(time.time() * 1000), self.versions, self.region, self.hw_model
        ).to_bytes()

    def _next_id(self) -> int:
        self._packet_id = self._packet_id % 65535 + 1
        return self._packet_id

    async def connect(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        status = topic(self.tid, Channel.STATUS)
        writer.write(
            mqtt5.Connect(
                self.tid,
                KEEPALIVE_S,
                will_topic=status,
                will_payload=self._status(False),
                will_retain=True,
                will_qos=1,
            ).to_bytes()
        )
        first, body = await _read_packet(reader)
        if first >> 4 != mqtt5.CONNACK or mqtt5.connack_reason(body) != 0:
            writer.close()
            raise ConnectionError(f"{self.tid}: broker refused the connection")
        self._writer = writer
        writer.write(mqtt5.subscribe(self._next_id(), [(command_filter(self.tid), 1)]))
        self._publish(status, self._status(True), retain=True)
        await writer.drain()
        self._reader_task = asyncio.create_task(self._read(reader))

    def _publish(self, topic_name: str, payload: bytes, retain: bool = False) -> None:
        assert self._writer is not None
        packet = mqtt5.Publish(topic_name, payload, 1, retain, self._next_id())
        self._writer.write(packet.to_bytes())

    def ping(self) -> None:
        if self._writer is not None:
            self._writer.write(mqtt5.PINGREQ_BYTES)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                first, body = await _read_packet(reader)
                if first >> 4 == mqtt5.PUBLISH:
                    await self._on_publish(mqtt5.Publish.parse(first, body))

    async def _on_publish(self, msg: mqtt5.Publish) -> None:
        assert self._writer is not None
        # The PUBACK and the reply leave in one write: ten thousand terminals answering a
        # broadcast at once are one system call each, not two.
        out = mqtt5.puback(msg.packet_id) if msg.qos == 1 else b""
        name = msg.topic.rsplit("/", 1)[-1]
        self.received.append((name, time.monotonic()))
        try:
            args = json.loads(msg.payload) if msg.payload else {}
        except ValueError:
            args = {}
        outcome = self.behaviour(self.tid, name, args)
        if inspect.isawaitable(outcome):
            if out:
                self._writer.write(out)
                out = b""
            outcome = await outcome
        ok, result = outcome
        response = msg.props.get(mqtt5.RESPONSE_TOPIC)
        if response is not None:
            props: dict[int, Any] = {}
            corr = msg.props.get(mqtt5.CORRELATION_DATA)
            if corr is not None:
                props[mqtt5.CORRELATION_DATA] = corr
            body = json.dumps({"ok": ok, "result": result}).encode()
            out += mqtt5.Publish(response, body, 1, False, self._next_id(), props).to_bytes()
        if out:
            self._writer.write(out)

    async def close(self, graceful: bool = True) -> None:
        """Graceful: offline status, then DISCONNECT. Otherwise drop the link (the will fires)."""
        if self._writer is None:
            return
        if graceful:
            self._publish(topic(self.tid, Channel.STATUS), self._status(False), retain=True)
            self._writer.write(mqtt5.DISCONNECT_BYTES)
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()
        self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        self._writer = None


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = (await reader.readexactly(1))[0]
    length = shift = 0
    for _ in range(4):
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    return first, await reader.readexactly(length) if length else b""


class SimFleet:
    """Many ``SimTerminal``s, connected in parallel batches and kept alive together."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.terminals: dict[str, SimTerminal] = {}
        self._pinger: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SimFleet:
        self._pinger = asyncio.create_task(self._ping_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        await asyncio.gather(*(t.close() for t in self.terminals.values()))

    async def add(self, terminals: list[SimTerminal], batch: int = 250) -> None:
        for i in range(0, len(terminals), batch):
            chunk = terminals[i : i + batch]
            await asyncio.gather(*(t.connect() for t in chunk))
            self.terminals.update((t.tid, t) for t in chunk)

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_S / 2)
            for t in self.terminals.values():
                t.ping()
