"""No telemetry gap after a broker crash (issue 14): Mosquitto killed -9 under load from real
enrolled agents (mTLS, dynamic-security roles), restarted on the same state: every event and
every sample the agents produced is stored, each once.

The broker loses what it had acknowledged but not delivered or saved (autosave every 30 s),
and it comes back without ingest's shared telemetry subscription; the agents' spools keep
every message until ingest confirms storing it (``cuntong/v1/t/<id>/ack``) and send the
unconfirmed ones again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.security import broker_services
from cloud.tsdb import TelemetryReader
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.agent import Agent
from tests.crashrig import produce, stored_stamps
from tests.helpers import CloudProcess, enrolled_link, eventually, secured_cloud
from tests.integration.agents import agent_settings, new_id

AGENTS = 3
#: Seconds between one agent's messages while the load runs.
STEP_S = 0.03


@pytest.fixture
def secured(
    tmp_path: Path, victoria: VictoriaMetrics
) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    with secured_cloud(tmp_path, victoria.url, broker_services("api")) as stack:
        yield stack


async def test_broker_kill_9_under_load_loses_no_event_and_no_sample(
    tmp_path: Path, secured: tuple[Path, Broker, CloudProcess], victoria: VictoriaMetrics
) -> None:
    _, broker, cloud = secured
    agents = []
    for i in range(AGENTS):
        tid = new_id(f"BK{i}")
        # The agents' own telemetry loop is slowed right down: the test produces the samples.
        settings = agent_settings(
            tmp_path, 1, tid, simulate=False, telemetry_interval_s=3600, ack_timeout_s=2.0
        )
        agents.append(Agent(settings, link=await enrolled_link(cloud.url, settings.state_dir, tid)))
    runs = [asyncio.create_task(a.run()) for a in agents]
    stop = asyncio.Event()
    samples: list[dict[int, int]] = [{} for _ in agents]
    events: list[list[int]] = [[] for _ in agents]
    try:
        for a in agents:
            await asyncio.wait_for(a.connected.wait(), 15)
        loads = [
            asyncio.create_task(produce(a, stop, samples[i], events[i], STEP_S))
            for i, a in enumerate(agents)
        ]
        await asyncio.sleep(2)
        broker.kill()  # mid-stream: PUBACKed messages not yet delivered or saved die with it
        killed_at = time.monotonic()
        await asyncio.sleep(1)
        broker.start()
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*loads)
        assert all(a.connects >= 2 for a in agents), "an agent never saw the broker go"

        # Every spool empties: each message it held was confirmed as stored by ingest.
        async def confirmed() -> bool:
            return all(a.spool.depth() == 0 for a in agents)

        await eventually(confirmed, timeout=60, every=0.5)
        recovered_s = time.monotonic() - killed_at

        async with cloud.client() as http:
            for a, produced in zip(agents, events, strict=True):
                r = await http.get(f"/api/v1/terminals/{a.tid}/events", params={"limit": 1000})
                assert r.status_code == 200, r.text
                stored = [e["seq"] for e in r.json()]
                assert sorted(stored) == sorted(produced), a.tid  # all, and each once
        reader = TelemetryReader(victoria.url)
        try:
            for a, produced in zip(agents, samples, strict=True):
                # Fails, showing what is stored, unless every produced sample is there.
                got = await eventually(
                    stored_stamps(reader, a.tid, set(produced.values())), timeout=20
                )
                assert len(got) == len(set(got)), "a sample is stored twice"
        finally:
            await reader.close()
        total = sum(len(s) for s in samples)
        assert total > 100 * AGENTS / 3 and sum(len(e) for e in events) > 20
        print(
            f"{total} samples, {sum(len(e) for e in events)} events, 0 lost; "
            f"spools confirmed empty {recovered_s:.1f} s after the kill; "
            f"resend passes {sum(a.resends for a in agents)}"
        )
    finally:
        stop.set()
        if broker.proc is None:
            broker.start()
        for a in agents:
            a.stop()
        await asyncio.gather(*runs, return_exceptions=True)
