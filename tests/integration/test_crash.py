"""Nothing acknowledged is lost when the API dies (issue 14): ingest acknowledges a message
to the broker only once it is stored, so a SIGKILL just after a terminal's event leaves it
queued in ingest's persistent session, and the restarted ingest stores it (once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from cloud.tsdb import TelemetryReader
from common import envelope, procs
from common.topics import Channel, topic
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from tests.crashrig import CrashRig, Round, Tally
from tests.helpers import CloudProcess, eventually, start_cloud
from tests.integration.agents import new_id

KILLS = 3


@pytest.fixture
def cloud_on_own_store(
    tmp_path: Path, broker: Broker
) -> Iterator[tuple[CloudProcess, VictoriaMetrics, Broker]]:
    """The API on a VictoriaMetrics of its own, which the test may stop."""
    vm = VictoriaMetrics(procs.free_port(), tmp_path / "vm" / "data").start()
    try:
        cloud = start_cloud(tmp_path, f"sqlite://{tmp_path / 'c.sqlite3'}", broker.cfg.port, vm.url)
        try:
            yield cloud, vm, broker
        finally:
            procs.stop(cloud.proc)
    finally:
        vm.stop()


async def test_sigkill_50ms_after_a_message_loses_nothing(
    tmp_path: Path, broker: Broker, victoria: VictoriaMetrics
) -> None:
    rig = CrashRig.start(tmp_path, broker.cfg.port, victoria.url, new_id("KILL"))
    try:
        rounds: list[Round] = []
        for kill in range(KILLS):
            rounds.append(await rig.kill_after_message(kill, delay_s=0.05))

        async def all_stored() -> list[Tally] | None:
            tallies = await rig.tally(rounds)
            return tallies if all(t.lost == 0 for t in tallies) else None

        tallies = await eventually(all_stored, timeout=30)
    finally:
        rig.stop()
    assert all(t.duplicated == 0 for t in tallies), tallies


async def test_store_outage_turns_healthz_degraded_and_loses_nothing(
    tmp_path: Path, cloud_on_own_store: tuple[CloudProcess, VictoriaMetrics, Broker]
) -> None:
    """VictoriaMetrics down: writes fail, /healthz says degraded, the sample stays pending
    (unacknowledged); back up, the sample lands and health is ok again."""
    cloud, vm, broker = cloud_on_own_store
    tid = new_id("VMDOWN")
    now = int(time.time() * 1000)
    vm.stop()
    try:
        async with aiomqtt.Client(
            "127.0.0.1", broker.cfg.port, identifier=tid, protocol=aiomqtt.ProtocolVersion.V5
        ) as mqtt:
            sample = envelope.Telemetry(tid, 1, now, {"cpu_pct": 5.0}, {}, {})
            await mqtt.publish(topic(tid, Channel.TELEMETRY), sample.to_bytes(), qos=1)
        async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as http:

            async def degraded() -> dict[str, Any] | None:
                r = await http.get("/healthz")
                return r.json() if r.status_code == 503 else None

            body = await eventually(degraded, timeout=30)
            assert body["status"] == "degraded"
            assert body["ingest"].startswith("degraded")
    finally:
        vm.start()
    reader = TelemetryReader(vm.url)
    try:

        async def landed() -> list[int] | None:
            series = await reader.export(f'terminal_cpu_pct{{terminal_id="{tid}"}}')
            return [t for s in series for t in s["timestamps"]] or None

        assert await eventually(landed, timeout=30) == [now]
    finally:
        await reader.close()
    async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as http:

        async def ok() -> bool:
            return (await http.get("/healthz")).status_code == 200

        await eventually(ok, timeout=15)
