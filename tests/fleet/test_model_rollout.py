"""A bank's model bundle rolled out to a group of real enrolled agents, and back again.

Secured cloud and mTLS broker as child processes, two in-process agents enrolled through the
real claim flow, the bundle published to the package store, rollouts through the API; the
terminals download, verify, health-check and switch, and report it in their versions and in
the liveness results. Then a bundle that is unsigned, one that is corrupted and one that
fails its health check, each leaving the terminal on the models it had.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cuntong.servers.mosquitto import Broker
from edge.agent import Agent
from edge.liveness import FACTORY, SHIPPED
from edge.vision.runtime import ModelSet
from models.bundle import COMPONENT, Bundle
from tests.fleet.conftest import Agents
from tests.helpers import CloudProcess, eventually
from tests.integration.agents import new_id
from tests.integration.test_agent_liveness import Customer
from tests.integration.test_secure_path import _enrolled_agent
from tests.vision.bundles import PROBE, bank_bundle, corrupted, trusting
from tests.vision.faces import acted

BANK = Ed25519PrivateKey.generate()
PROBE_KEY = f"{COMPONENT}/{PROBE}"


@pytest.fixture(scope="module")
def cooperative() -> dict[str, list[np.ndarray]]:
    from skimage import data

    return acted(ModelSet.load(), np.ascontiguousarray(data.astronaut()))


async def _terminal(
    tmp_path: Path, cloud: CloudProcess, runner: Agents, tid: str, frames: dict[str, Any]
) -> Agent:
    agent = await _enrolled_agent(tmp_path, cloud, tid)
    agent.liveness.trusted = trusting(BANK)  # the bank's terminals trust its model key
    customer = Customer(frames)
    agent.liveness.frames, agent.liveness.prompt = customer.stream, customer.hear
    runner.running[tid] = (agent, asyncio.create_task(agent.run()))
    await asyncio.wait_for(agent.connected.wait(), 10)
    return agent


async def _publish(http: httpx.AsyncClient, version: str, bundle: Bundle) -> None:
    r = await http.put(f"/api/v1/fleet/packages/{COMPONENT}/{version}", content=bundle.to_bytes())
    assert r.status_code == 201, r.text


async def _command(http: httpx.AsyncClient, tid: str, name: str, **args: Any) -> dict[str, Any]:
    body = {"name": name, "terminals": [tid], "args": args}
    r = await http.post("/api/v1/fleet/commands", json=body)
    assert r.status_code in (200, 201), r.text
    cid = r.json()["commands"][0]

    async def final() -> dict[str, Any] | None:
        c = (await http.get(f"/api/v1/fleet/commands/{cid}")).json()
        return c if c["state"] not in ("queued", "sent") else None  # type: ignore[no-any-return]

    return await eventually(final, timeout=60)


async def _rollout(http: httpx.AsyncClient, group: str, action: str, **args: Any) -> None:
    body = {
        "name": f"{action} {args}",
        "group": group,
        "action": action,
        "args": {"component": COMPONENT, **args},
        "rollback_action": None,
        "plan": {"canary": 1, "wave_size": 10, "min_finished": 1},
    }
    r = await http.post("/api/v1/fleet/rollouts", json=body)
    assert r.status_code == 201, r.text

    async def settled() -> dict[str, Any] | None:
        doc = (await http.get(f"/api/v1/fleet/rollouts/{r.json()['id']}")).json()
        return doc if doc["phase"] not in ("running", "rolling_back") else None  # type: ignore[no-any-return]

    done = await eventually(settled, timeout=60)
    assert done["phase"] == "succeeded", done


async def _reporting(http: httpx.AsyncClient, prefix: str, *versions: str) -> int:
    """How many of our terminals the registry shows with all ``component=version`` pairs."""
    params = [("q", prefix), *(("version", v) for v in versions)]
    return (await http.get("/api/v1/fleet/terminals", params=params)).json()["total"]  # type: ignore[no-any-return]


async def test_bundle_rolls_out_to_a_group_reports_its_versions_and_rolls_back(
    tmp_path: Path,
    secured: tuple[Broker, CloudProcess],
    cooperative: dict[str, list[np.ndarray]],
) -> None:
    _, cloud = secured
    prefix = new_id("MB")
    ids = [f"{prefix}-{i}" for i in range(2)]
    runner = Agents(tmp_path, 0)
    try:
        agents = [await _terminal(tmp_path, cloud, runner, t, cooperative) for t in ids]
        async with cloud.client() as http:
            factory = f"{COMPONENT}={FACTORY}"
            await eventually(lambda: _at(http, prefix, 2, factory))
            # Thin: only the bank's classifier travels; the terminals add the models they ship.
            await _publish(http, "bank-1", bank_bundle(BANK, "2026.1").thin(SHIPPED))
            group = {"name": f"mb-{prefix}", "kind": "static", "members": ids}
            assert (await http.post("/api/v1/fleet/groups", json=group)).status_code == 201

            await _rollout(http, group["name"], "ota_install", version="bank-1")
            bank = (f"{COMPONENT}=bank-1", f"{PROBE_KEY}=2026.1")
            await eventually(lambda: _at(http, prefix, 2, *bank), timeout=20)
            check = await _command(http, ids[0], "liveness_check", business_type="password_reset")
            assert check["state"] == "succeeded", check
            assert check["result"]["models"][PROBE] == "2026.1"

            await _rollout(http, group["name"], "ota_rollback")
            await eventually(lambda: _at(http, prefix, 2, factory), timeout=20)
            assert await _reporting(http, prefix, f"{PROBE_KEY}=2026.1") == 0
            check = await _command(http, ids[1], "liveness_check", business_type="password_reset")
            assert check["state"] == "succeeded", check
            assert PROBE not in check["result"]["models"]
            assert "cuntong-passive-baseline" in check["result"]["models"]

            # Refused before any slot changes: unsigned, then corrupted after signing.
            before = agents[0].ota.slots(COMPONENT)
            for version, bad, why in [
                ("bank-unsigned", bank_bundle(BANK, signed=False), "entry is unsigned"),
                ("bank-corrupt", corrupted(bank_bundle(BANK)), "file corrupted or replaced"),
            ]:
                await _publish(http, version, bad)
                refused = await _command(
                    http, ids[0], "ota_install", component=COMPONENT, version=version
                )
                assert refused["state"] == "failed"
                assert "refused: bad_model_bundle" in refused["result"]["error"]
                assert why in refused["result"]["error"]
                assert agents[0].ota.slots(COMPONENT) == before

            # Installed, but its classifier scores ~100 "probability": the terminal rolls back.
            await _publish(http, "bank-sick", bank_bundle(BANK, "2026.9", scale=1.0))
            sick = await _command(
                http, ids[0], "ota_install", component=COMPONENT, version="bank-sick"
            )
            assert sick["state"] == "failed"
            assert "model_unhealthy" in sick["result"]["error"]
            assert "rolled back to slot a" in sick["result"]["error"]
            assert agents[0].ota.slots(COMPONENT).active == before.active
            await asyncio.sleep(1.5)  # a telemetry beat: the registry must still say factory
            assert await _at(http, prefix, 2, factory)

            async def states() -> list[str] | None:
                r = await http.get(f"/api/v1/terminals/{ids[0]}/events")  # newest first
                got = [e["data"]["state"] for e in r.json() if e["type"] == "ota_progress"]
                return got if got[:1] == ["rolled_back"] and got.count("refused") == 2 else None

            assert {"healthy", "refused", "rolled_back"} <= set(await eventually(states))
    finally:
        for tid in list(runner.running):
            await runner.stop(tid)


async def _at(http: httpx.AsyncClient, prefix: str, n: int, *versions: str) -> bool:
    return await _reporting(http, prefix, *versions) == n
