"""Alerts: rules and de-duplication (pure), then end to end with a real webhook receiver."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from common import envelope, procs
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from fleet import alerts as al
from tests.helpers import OPERATOR, CloudProcess, eventually, start_cloud
from tests.integration.agents import new_id

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
RULES = al.Rules(dt.timedelta(minutes=30), 90, 70)


def test_conditions_and_reconcile_deduplicate_and_clear() -> None:
    hot = al.TerminalState("A", True, T0, {"temp_c": 75, "disk_pct": 50}, {"pin_pad": "fault"})
    active = al.conditions(hot, T0, RULES)
    assert set(active) == {("high_temperature", "A", ""), ("peripheral_fault", "A", "pin_pad")}
    plan = al.reconcile([], active)
    assert len(plan.open) == 2
    again = al.reconcile(plan.open, active)  # same conditions: nothing new
    assert again.open == [] and len(again.touch) == 2
    cool = al.conditions(al.TerminalState("A", True, T0, {"temp_c": 30}, {}), T0, RULES)
    assert len(al.reconcile(plan.open, cool).clear) == 2
    # Operators clear rollout alerts; terminal health never does.
    assert al.reconcile([("rollout_aborted", "", "r1")], []).clear == []


def test_offline_alert_waits_for_the_threshold() -> None:
    gone = al.TerminalState("B", False, T0, {"temp_c": 99}, {})
    assert al.conditions(gone, T0 + dt.timedelta(minutes=29), RULES) == {}
    assert set(al.conditions(gone, T0 + dt.timedelta(minutes=30), RULES)) == {("offline", "B", "")}


class Hook:
    """A real HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.port = procs.free_port()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        self.bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    h = Hook()
    server = await asyncio.start_server(h._serve, "127.0.0.1", h.port)
    async with server:
        yield h


@pytest.fixture
def alerting_cloud(
    tmp_path: Path, broker: Broker, victoria: VictoriaMetrics, hook: Hook
) -> Iterator[CloudProcess]:
    c = start_cloud(
        tmp_path,
        f"sqlite://{tmp_path / 'cloud.sqlite3'}",
        broker.cfg.port,
        victoria.url,
        CUNTONG_FLEET_OFFLINE_ALERT_AFTER_S="1",
        CUNTONG_FLEET_ALERT_INTERVAL_S="0.3",
        CUNTONG_FLEET_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{hook.port}/hook",
    )
    try:
        yield c
    finally:
        procs.stop(c.proc)


async def test_alerts_open_once_clear_and_reach_the_webhook(
    broker: Broker, alerting_cloud: CloudProcess, hook: Hook
) -> None:
    tid = new_id("AL")
    ms = lambda: int(time.time() * 1000)  # noqa: E731

    def telemetry(seq: int, temp: float, disk: float, reader: str) -> bytes:
        metrics = {"temp_c": temp, "disk_pct": disk}
        return envelope.Telemetry(tid, seq, ms(), metrics, {"id_reader": reader}, {}).to_bytes()

    async with (
        aiomqtt.Client(
            "127.0.0.1", broker.cfg.port, identifier=tid, protocol=aiomqtt.ProtocolVersion.V5
        ) as mqtt,
        alerting_cloud.client() as http,
    ):
        status = f"cuntong/v1/t/{tid}/status"
        await mqtt.publish(
            status, envelope.Status(tid, True, ms(), {}, {}, "X").to_bytes(), qos=1, retain=True
        )
        for seq in (1, 2):
            await mqtt.publish(
                f"cuntong/v1/t/{tid}/telemetry", telemetry(seq, 85, 95, "fault"), qos=1
            )
            await asyncio.sleep(0.6)

        async def active() -> list[dict[str, Any]]:
            return (await http.get("/api/v1/fleet/alerts", params={"terminal_id": tid})).json()  # type: ignore[no-any-return]

        async def three() -> list[dict[str, Any]] | None:
            got = await active()
            return got if len(got) == 3 else None

        alerts = await eventually(three)
        assert {a["kind"] for a in alerts} == {"high_temperature", "disk_full", "peripheral_fault"}
        await asyncio.sleep(1.0)
        assert len(await active()) == 3  # still one per condition after several beats
        temp = next(a for a in alerts if a["kind"] == "high_temperature")
        acked = await http.post(f"/api/v1/fleet/alerts/{temp['id']}/ack")
        assert acked.json()["state"] == "acked" and acked.json()["acked_by"] == OPERATOR

        await mqtt.publish(f"cuntong/v1/t/{tid}/telemetry", telemetry(3, 30, 40, "ok"), qos=1)
        await eventually(lambda: _empty(active))
        await mqtt.publish(
            status, envelope.Status(tid, False, ms(), {}, {}, "X").to_bytes(), qos=1, retain=True
        )

        async def offline() -> list[dict[str, Any]] | None:
            got = await active()
            return got if [a["kind"] for a in got] == ["offline"] else None

        await eventually(offline)

    def delivered() -> list[tuple[str, str]]:
        return [
            (b["event"], b["alert"]["kind"])
            for b in hook.bodies
            if b["alert"]["terminal_id"] == tid
        ]

    async def offline_delivered() -> bool:
        # Webhook delivery runs after the alert is stored: wait for it, not for the API.
        return ("opened", "offline") in delivered()

    await eventually(offline_delivered)
    events = delivered()
    opened = sorted(k for e, k in events if e == "opened")
    assert opened == ["disk_full", "high_temperature", "offline", "peripheral_fault"]
    assert sorted(k for e, k in events if e == "cleared") == [
        "disk_full",
        "high_temperature",
        "peripheral_fault",
    ]


async def _empty(probe: Any) -> bool:
    return not await probe()
