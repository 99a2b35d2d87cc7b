"""Secured mode: the sender signs each command at delivery and the enrolled agent verifies it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cuntong import procs
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from fleet.sender import INSTANCE_SUFFIX
from provisioning import wiring
from tests.fleet.conftest import Agents
from tests.helpers import CloudProcess, eventually, start_cloud
from tests.integration.agents import new_id
from tests.integration.test_secure_path import TOKEN, _enrolled_agent


@pytest.fixture
def secured(tmp_path: Path, victoria: VictoriaMetrics) -> Iterator[tuple[Broker, CloudProcess]]:
    pki = tmp_path / "cloud"
    services = {"api": "cloud", f"api{INSTANCE_SUFFIX}": "cloud"}
    cfg, _ = wiring.secure_broker(
        pki, procs.free_port(), dt.datetime.now(dt.UTC), services=services
    )
    broker = Broker(cfg, tmp_path / "mosquitto").start()
    cloud = start_cloud(
        tmp_path,
        f"sqlite://{tmp_path / 'cloud.sqlite3'}",
        broker.cfg.port,
        victoria.url,
        CUNTONG_CLOUD_STATE_DIR=str(pki),
        CUNTONG_CLOUD_ADMIN_TOKEN=TOKEN,
    )
    try:
        yield broker, cloud
    finally:
        procs.stop(cloud.proc)
        broker.stop()


async def test_signed_command_waits_offline_and_is_verified_on_return(
    tmp_path: Path, secured: tuple[Broker, CloudProcess]
) -> None:
    _, cloud = secured
    tid = new_id("SF")
    agent = await _enrolled_agent(tmp_path, cloud, tid)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"name": "set_config", "terminals": [tid], "args": {"config": {"volume": 3}}}
    async with cloud.client() as http:
        assert (await http.post("/api/v1/fleet/commands", json=body)).status_code == 401
        r = await http.post("/api/v1/fleet/commands", json=body, headers=auth)
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
    assert agent.mdm.config["state"] == {"volume": 3}
