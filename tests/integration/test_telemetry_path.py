"""Telemetry and events from a real agent through a real broker to the store and the API,
on both database backends."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from common import procs
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from tests.helpers import eventually, start_cloud
from tests.integration.agents import REGION, make_agent, new_id


async def test_telemetry_and_events_reach_store_and_api(
    tmp_path: Path, db_url: str, broker: Broker, victoria: VictoriaMetrics
) -> None:
    cloud = start_cloud(tmp_path, db_url, broker.cfg.port, victoria.url)
    tid = new_id("SX")
    agent = make_agent(tmp_path, broker.cfg.port, tid)
    run = asyncio.create_task(agent.run())
    try:
        async with cloud.client() as http:

            async def detail() -> dict[str, Any] | None:
                r = await http.get(f"/api/v1/terminals/{tid}")
                body = r.json() if r.status_code == 200 else None
                return body if body and "cpu_pct" in body["health"].get("metrics", {}) else None

            d = await eventually(detail)
            assert d["status"] == "online"
            assert d["region"] == REGION
            assert d["agent_version"] == d["versions"]["agent"]
            assert set(d["health"]["peripherals"]) == {
                "id_reader",
                "pin_pad",
                "ic_reader",
                "camera",
            }
            assert 0 <= d["health"]["metrics"]["cpu_pct"] <= 100

            async def listed(**params: Any) -> list[str]:
                r = await http.get("/api/v1/terminals", params=params)
                assert r.status_code == 200, r.text
                return [t["id"] for t in r.json()["items"]]

            assert tid in await listed(status="online", county="陈仓区")
            assert tid in await listed(version=d["agent_version"], q=tid[:6])
            assert tid not in await listed(status="offline")
            assert tid not in await listed(province="甘肃省")
            assert tid not in await listed(version="9.9.9")
            bad = await http.get("/api/v1/terminals", params={"page_size": 100_000})
            assert bad.status_code == 422
            assert (await http.get("/api/v1/terminals/nope")).status_code == 404

            async def history() -> list[Any] | None:
                r = await http.get(
                    f"/api/v1/terminals/{tid}/telemetry",
                    params={"metric": ["cpu_pct", "rtt_ms"], "minutes": 5, "step_s": 1},
                )
                assert r.status_code == 200, r.text
                series = r.json()["series"]
                return series if len(series) == 2 else None

            series = await eventually(history, timeout=20)
            assert [s["metric"] for s in series] == ["cpu_pct", "rtt_ms"]
            assert all(len(s["points"]) > 0 for s in series)
            unknown = await http.get(f"/api/v1/terminals/{tid}/telemetry?metric=warp")
            assert unknown.status_code == 422

            seq = agent.emit_event("idcard_read", {"masked_id": "6101**********1234"})

            async def events() -> list[Any] | None:
                r = await http.get(f"/api/v1/terminals/{tid}/events")
                return [e for e in r.json() if e["seq"] == seq] or None

            (event,) = await eventually(events)
            assert event["type"] == "idcard_read"
            assert event["data"] == {"masked_id": "6101**********1234"}

            agent.stop()
            await run

            async def offline() -> bool:
                r = await http.get(f"/api/v1/terminals/{tid}")
                return r.json()["status"] == "offline"

            await eventually(offline)
    finally:
        agent.stop()
        await asyncio.gather(run, return_exceptions=True)
        procs.stop(cloud.proc)
