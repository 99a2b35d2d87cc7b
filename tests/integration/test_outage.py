"""The broker goes away for a while: nothing queued on the terminal is lost or doubled."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from cloud.tsdb import TelemetryReader
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.spool import Kind
from tests.helpers import CloudProcess, eventually
from tests.integration.agents import make_agent, new_id


async def test_broker_outage_and_agent_restart_deliver_every_event_once(
    tmp_path: Path, cloud: CloudProcess, broker: Broker, victoria: VictoriaMetrics
) -> None:
    tid = new_id("OUT")
    agent = make_agent(tmp_path, broker.cfg.port, tid, telemetry_interval_s=0.5, simulate=False)
    run = asyncio.create_task(agent.run())
    agent2 = None
    run2: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(agent.connected.wait(), 10)
        before = [agent.emit_event("iccard_inserted", {"i": i}) for i in range(5)]

        broker.stop()
        await eventually(lambda: _true(not agent.connected.is_set()))
        during = [agent.emit_event("iccard_inserted", {"i": i}) for i in range(5, 25)]
        await asyncio.sleep(1.5)  # telemetry piles up in the spool meanwhile

        # The agent goes down too while the link is still down: the spool is on disk.
        agent.stop()
        await run

        broker.start()
        expected_before_restart = before + during
        async with cloud.client() as http:
            # Telemetry rides a shared subscription, which Mosquitto does not restore after a
            # broker restart; the agent comes back once ingest has resubscribed (docs/topics).
            await eventually(lambda: _ingest_ready(http), timeout=15)
            agent2 = make_agent(
                tmp_path, broker.cfg.port, tid, telemetry_interval_s=0.5, simulate=False
            )
            queued = agent2.spool.peek(10_000)
            queued_telemetry = {e.ts_ms for e in queued if e.kind is Kind.TELEMETRY}
            assert len(queued_telemetry) >= 3
            assert {e.seq for e in queued if e.kind is Kind.EVENT} >= set(during)
            run2 = asyncio.create_task(agent2.run())
            after = [agent2.emit_event("iccard_removed", {"i": i}) for i in range(25, 30)]
            expected = expected_before_restart + after

            async def all_events() -> list[dict[str, Any]] | None:
                r = await http.get(f"/api/v1/terminals/{tid}/events", params={"limit": 1000})
                rows = r.json() if r.status_code == 200 else []
                return rows if len(rows) >= len(expected) else None

            rows = await eventually(all_events, timeout=30)
        seqs = [r["seq"] for r in rows]
        assert sorted(seqs) == sorted(expected)  # every event, each once
        assert [r["data"]["i"] for r in sorted(rows, key=lambda r: r["seq"])] == list(range(30))
        await eventually(lambda: _true(agent2.spool.depth() == 0), timeout=10)

        reader = TelemetryReader(victoria.url)
        try:

            async def stored() -> list[int] | None:
                series = await reader.export(f'terminal_cpu_pct{{terminal_id="{tid}"}}')
                stamps = [ts for s in series for ts in s["timestamps"]]
                return stamps if queued_telemetry <= set(stamps) else None

            stamps = await eventually(stored, timeout=20)
        finally:
            await reader.close()
        assert len(stamps) == len(set(stamps)), "a telemetry sample was stored twice"
    finally:
        if not broker.proc:
            broker.start()
        for a in (agent, agent2):
            if a is not None:
                a.stop()
        await asyncio.gather(run, *(t for t in [run2] if t), return_exceptions=True)


async def _ingest_ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/healthz")).json().get("ingest") == "ok"


async def _true(value: bool) -> bool:
    return value
