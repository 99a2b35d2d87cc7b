"""Garbage, oversized and forged payloads are counted and logged; ingest carries on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from cloud.tsdb import TelemetryReader
from common import envelope, procs
from cuntong.servers.mosquitto import Broker, BrokerConfig
from cuntong.servers.victoria import VictoriaMetrics
from tests.helpers import CloudProcess, eventually, start_cloud
from tests.integration.agents import new_id


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker and one cloud for the module (a cloud start is a few seconds, more on a
    loaded machine): the tests keep apart by terminal id and count with ``>=``."""
    b = Broker(BrokerConfig(port=procs.free_port()), tmp_path_factory.mktemp("mosquitto")).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture(scope="module")
def cloud(
    tmp_path_factory: pytest.TempPathFactory, broker: Broker, victoria: VictoriaMetrics
) -> Iterator[CloudProcess]:
    tmp = tmp_path_factory.mktemp("cloud")
    c = start_cloud(tmp, f"sqlite://{tmp / 'cloud.sqlite3'}", broker.cfg.port, victoria.url)
    try:
        yield c
    finally:
        procs.stop(c.proc)


async def test_garbage_does_not_stop_ingest(
    tmp_path: Path, cloud: CloudProcess, broker: Broker
) -> None:
    tid = new_id("BAD")
    base = f"cuntong/v1/t/{tid}"
    now_ms = int(time.time() * 1000)
    good = envelope.Telemetry(tid, 10, now_ms, {"cpu_pct": 42.0}, {}, {"agent": "x"})
    forged = envelope.Telemetry("SOMEONE-ELSE", 11, 1, {"cpu_pct": 1.0}, {}, {})
    garbage: list[tuple[str, bytes]] = [
        (f"{base}/telemetry", b"\x00\xff\xfe"),
        (f"{base}/telemetry", b"{}"),
        (f"{base}/telemetry", b'{"v":1,"kind":"telemetry","tid":"' + tid.encode() + b'"}'),
        (f"{base}/telemetry", forged.to_bytes()),
        (f"{base}/telemetry", json.dumps({"v": 1, "pad": "x" * 200_000}).encode()),
        (f"{base}/event", b"[]"),
        (f"{base}/status", b"not json at all"),
        (f"{base}/telemetry", b""),
    ]
    async with aiomqtt.Client(
        "127.0.0.1", broker.cfg.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as mqtt:
        for topic, payload in garbage:
            await mqtt.publish(topic, payload, qos=1)
        await mqtt.publish(f"{base}/telemetry", good.to_bytes(), qos=1)

    async with cloud.client() as http:

        async def landed() -> dict[str, Any] | None:
            r = await http.get(f"/api/v1/terminals/{tid}")
            return r.json() if r.status_code == 200 and r.json()["health"] else None

        detail = await eventually(landed)
        assert detail["health"]["metrics"] == {"cpu_pct": 42.0}
        health = (await http.get("/healthz")).json()
    rejected = health["ingest_stats"]["rejected"]
    assert rejected["oversized"] >= 1
    assert rejected["malformed"] >= len(garbage) - 1
    assert cloud.proc.poll() is None
    assert "rejected message" in cloud.log.read_text()


async def test_redelivered_messages_are_stored_once(
    tmp_path: Path, cloud: CloudProcess, broker: Broker, victoria: VictoriaMetrics
) -> None:
    tid = new_id("DUP")
    base = f"cuntong/v1/t/{tid}"
    ts = int(time.time() * 1000)
    samples = [
        envelope.Telemetry(tid, seq, ts + seq, {"cpu_pct": float(seq)}, {}, {}) for seq in (1, 2, 3)
    ]
    event = envelope.Event(tid, 4, ts, "pin_entered", {"ok": True})
    async with aiomqtt.Client(
        "127.0.0.1", broker.cfg.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as mqtt:
        # As a spool replay after a lost PUBACK would: 1, 2, 1, 2, 3, and the event twice.
        for sample in (samples[0], samples[1], samples[0], samples[1], samples[2]):
            await mqtt.publish(f"{base}/telemetry", sample.to_bytes(), qos=1)
        for _ in range(2):
            await mqtt.publish(f"{base}/event", event.to_bytes(), qos=1)

    reader = TelemetryReader(victoria.url)
    try:

        async def stored() -> list[int] | None:
            series = await reader.export(f'terminal_cpu_pct{{terminal_id="{tid}"}}')
            stamps = [t for s in series for t in s["timestamps"]]
            return stamps if len(set(stamps)) == 3 else None

        stamps = await eventually(stored)
    finally:
        await reader.close()
    assert sorted(stamps) == [ts + 1, ts + 2, ts + 3]
    async with cloud.client() as http:
        events = (await http.get(f"/api/v1/terminals/{tid}/events")).json()
        stats = (await http.get("/healthz")).json()["ingest_stats"]
    assert [e["seq"] for e in events] == [4]
    assert stats["duplicates"] >= 2
