"""Secured mode: the sender signs each command at delivery and the enrolled agent verifies it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from cuntong.servers.mosquitto import Broker
from tests.fleet.conftest import Agents
from tests.helpers import CloudProcess, eventually
from tests.integration.agents import new_id
from tests.integration.test_secure_path import _enrolled_agent


async def test_signed_command_waits_offline_and_is_verified_on_return(
    tmp_path: Path, secured: tuple[Broker, CloudProcess]
) -> None:
    _, cloud = secured
    tid = new_id("SF")
    agent = await _enrolled_agent(tmp_path, cloud, tid)
    body = {"name": "set_config", "terminals": [tid], "args": {"config": {"log_level": "WARNING"}}}
    async with httpx.AsyncClient(base_url=cloud.url) as anonymous:
        assert (await anonymous.post("/api/v1/fleet/commands", json=body)).status_code == 401
    async with cloud.client() as http:  # logged in as a fleet operator
        r = await http.post("/api/v1/fleet/commands", json=body)
        cid = r.json()["commands"][0]
        assert (await http.get(f"/api/v1/fleet/commands/{cid}")).json()["state"] == "queued"
        runner = Agents(tmp_path, 0)
        runner.running[tid] = (agent, asyncio.create_task(agent.run()))
        try:

            async def final() -> dict[str, Any] | None:
                c = (await http.get(f"/api/v1/fleet/commands/{cid}")).json()
                return c if c["state"] not in ("queued", "sent") else None

            done = await eventually(final, timeout=20)
        finally:
            await runner.stop(tid)
    assert done["state"] == "succeeded", done
    assert done["result"]["command_id"] == cid  # the agent verified the signed envelope
    assert agent.mdm.config["state"] == {"log_level": "WARNING"}
