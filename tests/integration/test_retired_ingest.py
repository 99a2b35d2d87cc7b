"""A retired ingest instance's broker sessions are ended by the leader (issues 14 and 17).

Every persistent session of ours never expires (the Mosquitto 2.0.11 crash, see
``common.mqtt_link``), so an ingest instance that dies for good leaves its sessions in the
shared subscription groups, and the broker keeps handing them a share of the terminals'
messages: those wait for the terminal's re-send (``ack_timeout_s``, 60 s), again and
again. Each running ingest renews a presence row; the leader ends, on every broker, the
sessions of an instance whose row lapsed (``Security.end_retired_ingest``).

Real processes: the secured broker, two cloud API processes (instances ``api``, the
leader, and ``old``) on one database, a real enrolled agent.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.db import close_db, open_db
from cloud.lease import lapsed
from cloud.models import LeaderLease, Terminal
from cloud.security import INGEST_PRESENCE, broker_services
from common import procs
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.agent import Agent
from tests.helpers import CloudProcess, enrolled_link, eventually, secured_cloud, start_cloud
from tests.integration.agents import agent_settings, new_id

RETIRE_AFTER_S = "4"


@pytest.fixture
def secured(
    tmp_path: Path, victoria: VictoriaMetrics
) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    services = broker_services("api", "old")
    extra = {"CUNTONG_CLOUD_INGEST_RETIRE_AFTER_S": RETIRE_AFTER_S}
    with secured_cloud(tmp_path, victoria.url, services, **extra) as stack:
        yield stack


async def _present() -> list[str]:
    return sorted(await LeaderLease.filter(name__startswith=INGEST_PRESENCE).values_list(
        "name", flat=True
    ))  # fmt: skip


@pytest.mark.timeout(240)
async def test_a_dead_ingest_instance_stops_taking_a_share_of_the_telemetry(
    tmp_path: Path, secured: tuple[Path, Broker, CloudProcess], victoria: VictoriaMetrics
) -> None:
    pki, broker, cloud = secured
    db_url = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
    old = await asyncio.to_thread(
        start_cloud,
        tmp_path,
        db_url,
        broker.cfg.port,
        victoria.url,
        create_operator=False,
        ready_s=120,
        CUNTONG_CLOUD_STATE_DIR=str(pki),
        CUNTONG_CLOUD_SERVICE_INSTANCE="old",
        CUNTONG_CLOUD_INGEST_RETIRE_AFTER_S=RETIRE_AFTER_S,
    )
    await open_db(db_url, upgrade=False)
    running: list[tuple[Agent, asyncio.Task[None]]] = []
    try:
        # Both instances ingest, and say so.
        want = [INGEST_PRESENCE + "api", INGEST_PRESENCE + "old"]
        await eventually(lambda: _equal(_present(), want), timeout=60)

        os.kill(old.proc.pid, signal.SIGKILL)  # gone for good, its sessions left behind
        old.proc.wait()
        # The leader ends them on the broker, then forgets the instance; the live one stays.
        await eventually(lambda: _equal(_present(), [INGEST_PRESENCE + "api"]), timeout=90)
        assert await lapsed(INGEST_PRESENCE, 0) == []

        # The whole share now reaches the live instance: a terminal's samples are all
        # confirmed stored well inside the 60 s its re-send would take (the dead
        # instance's session would have been handed about half of them).
        settings = agent_settings(
            tmp_path, 1, new_id("RI"), simulate=False, telemetry_interval_s=0.2
        )
        link = await enrolled_link(cloud.url, settings.state_dir, settings.terminal_id)
        agent = Agent(settings, link=link)
        running.append((agent, asyncio.create_task(agent.run())))
        await asyncio.wait_for(agent.connected.wait(), 30)
        await asyncio.sleep(4)  # about 20 samples
        agent.telemetry_interval_s = 3600.0  # stop adding; see what drains
        await eventually(lambda: _true(agent.spool.depth() == 0), timeout=30)
        stored = await Terminal.get(id=settings.terminal_id)
        assert stored.last_seen_at is not None
        assert broker.proc is not None and broker.proc.poll() is None
    finally:
        for agent, task in running:
            agent.stop()
            await asyncio.gather(task, return_exceptions=True)
        await close_db()
        procs.stop(old.proc)


async def _equal(got: object, want: object) -> bool:
    return await got == want  # type: ignore[misc]


async def _true(value: bool) -> bool:
    return value
