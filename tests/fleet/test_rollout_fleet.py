"""A staged rollout to 200 simulated terminals over the real broker, store and cloud."""

from __future__ import annotations

from typing import Any

import httpx

from cuntong.servers.mosquitto import Broker
from fleet.sim.terminals import SimFleet, SimTerminal
from tests.helpers import CloudProcess, eventually
from tests.integration.agents import REGION, new_id

N = 200


async def _rollout_settles(http: httpx.AsyncClient, rid: str) -> dict[str, Any] | None:
    r = (await http.get(f"/api/v1/fleet/rollouts/{rid}")).json()
    return r if r["phase"] in ("succeeded", "rolled_back", "aborted", "cancelled") else None


async def test_ten_percent_failing_health_checks_abort_at_threshold_and_roll_back(
    broker: Broker, cloud: CloudProcess
) -> None:
    prefix = new_id("RO")
    ids = [f"{prefix}-{i:03d}" for i in range(N)]
    failing = {tid for i, tid in enumerate(ids) if i % 10 == 3}

    def behaviour(tid: str, name: str, args: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        if name == "ota_install" and tid in failing:
            return False, {"error": "health check failed", "rolled_back_locally": True}
        return True, {"version": args.get("version")}

    async with SimFleet("127.0.0.1", broker.cfg.port) as fleet, cloud.client() as http:
        await fleet.add(
            [SimTerminal(t, "127.0.0.1", broker.cfg.port, behaviour, REGION) for t in ids]
        )

        async def all_online() -> bool:
            r = await http.get("/api/v1/fleet/terminals", params={"q": prefix, "status": "online"})
            return r.json()["total"] == N

        await eventually(all_online, timeout=30)
        group = {"name": "ro-all", "kind": "query", "selector": {"q": prefix}}
        assert (await http.post("/api/v1/fleet/groups", json=group)).status_code == 201
        body = {
            "name": "agent 0.2.0",
            "group": "ro-all",
            # Simulated terminals do not download: explicit arguments skip the package store.
            "args": {"component": "agent", "version": "0.2.0", "manifest": "-", "signature": "-"},
            "plan": {"canary": 20, "wave_size": 60, "abort_failure_pct": 5, "min_finished": 20},
        }
        created = await http.post("/api/v1/fleet/rollouts", json=body)
        assert created.status_code == 201, created.text
        assert [w["total"] for w in created.json()["waves"]] == [20, 60, 60, 60]
        done = await eventually(lambda: _rollout_settles(http, created.json()["id"]), timeout=30)
        targets = (
            await http.get(f"/api/v1/fleet/rollouts/{done['id']}/targets", params={"limit": 1000})
        ).json()
        alerts = (await http.get("/api/v1/fleet/alerts")).json()
        assert [a["subject"] for a in alerts if a["kind"] == "rollout_aborted"] == [done["id"]]

    assert done["phase"] == "rolled_back" and "failures 2/20" in done["reason"]
    assert done["waves"][0]["states"] == {"failed": 2, "rolled_back": 18}
    assert all(w["states"] == {"cancelled": 60} for w in done["waves"][1:])
    installed = {
        t for t, sim in fleet.terminals.items() if any(n == "ota_install" for n, _ in sim.received)
    }
    rolled = {
        t for t, sim in fleet.terminals.items() if any(n == "ota_rollback" for n, _ in sim.received)
    }
    assert installed == set(ids[:20])  # nothing beyond the canary was touched
    assert rolled == set(ids[:20]) - failing  # the failed ones rolled back by themselves
    assert {t["terminal_id"] for t in targets if t["state"] == "failed"} == failing & set(ids[:20])
