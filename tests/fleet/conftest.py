"""Fleet fixtures: the cloud API (with ingest and the command sender) as a child process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cloud.security import broker_services
from common import procs
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.agent import Agent
from fleet.sender import INSTANCE_SUFFIX
from tests.helpers import CloudProcess, secured_cloud, start_cloud
from tests.integration.agents import make_agent


@pytest.fixture
def cloud(tmp_path: Path, broker: Broker, victoria: VictoriaMetrics) -> Iterator[CloudProcess]:
    c = start_cloud(
        tmp_path, f"sqlite://{tmp_path / 'cloud.sqlite3'}", broker.cfg.port, victoria.url
    )
    try:
        yield c
    finally:
        procs.stop(c.proc)


class Agents:
    """Real in-process agents on the test broker; started, stopped and restarted by id."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.running: dict[str, tuple[Agent, asyncio.Task[None]]] = {}

    async def start(self, tid: str, **settings: object) -> Agent:
        agent = make_agent(self.root, self.port, tid, **settings)
        self.running[tid] = (agent, asyncio.create_task(agent.run()))
        await asyncio.wait_for(agent.connected.wait(), 10)
        return agent

    async def stop(self, tid: str) -> None:
        agent, task = self.running.pop(tid)
        agent.stop()
        await task


@pytest.fixture
async def agents(tmp_path: Path, broker: Broker) -> AsyncIterator[Agents]:
    a = Agents(tmp_path / "agents", broker.cfg.port)
    try:
        yield a
    finally:
        for tid in list(a.running):
            await a.stop(tid)


@pytest.fixture
def secured(tmp_path: Path, victoria: VictoriaMetrics) -> Iterator[tuple[Broker, CloudProcess]]:
    services = broker_services("api")
    assert f"api{INSTANCE_SUFFIX}" in services  # the stack's ACL lets the sender in
    with secured_cloud(tmp_path, victoria.url, services) as (_, broker, cloud):
        yield broker, cloud
