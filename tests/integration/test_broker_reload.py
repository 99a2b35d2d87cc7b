"""A broker reload with offline sessions (issue 14): Debian 12's Mosquitto 2.0.11 lists each
offline session with a finite expiry twice on SIGHUP and frees it while still listed when it
is taken over or expires. Every persistent client of ours asks for a never-expiring session,
which that version keeps out of the list, and the cloud's leader ends the sessions that
should end (``Security.sweep_sessions``).

Real processes: the secured broker and the cloud API (its ingest, desk and fleet links), and
real enrolled agents. Two agents and the API go away, the broker reloads (the CRL-ageing
reload), the API and one agent come back and take their sessions over, the sweep ends the
other agent's session as if it had been away a week (after the reload: the takeover that
used to free a listed session), that agent comes back too, and the broker exits 0 on
SIGTERM. Without valgrind a use-after-free does not always crash a small broker:
``bench/broker_reload.py --valgrind fleet-reload`` counts the invalid reads (0 now, 20 with
the old expiries; docs/provisioning.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.db import close_db, open_db
from cloud.models import Terminal
from cloud.security import Security, broker_services
from common import procs
from common.settings import CloudSettings
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.agent import Agent
from provisioning.revocation import SessionSweep
from tests.helpers import (
    FACTORY_TOKEN,
    CloudProcess,
    enrolled_link,
    eventually,
    secured_cloud,
    start_cloud,
)
from tests.integration.agents import agent_settings, new_id


@pytest.fixture
def secured(
    tmp_path: Path, victoria: VictoriaMetrics
) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    # A second instance ("api2") whose leader links (desk, fleet) the leader ends.
    # The broker logs to a file (flushed per line): the test sees "Reloading config." at once.
    services = broker_services("api", "api2")
    with secured_cloud(tmp_path, victoria.url, services, refusal_log=True) as stack:
        yield stack


def _reloads(pki: Path) -> int:
    (log,) = pki.rglob("mosquitto.log")
    return log.read_text().count("Reloading config")


async def _true(value: bool) -> bool:
    return value


@pytest.mark.timeout(300)
async def test_reload_with_offline_terminals_and_services_then_takeovers_exits_cleanly(
    tmp_path: Path, secured: tuple[Path, Broker, CloudProcess], victoria: VictoriaMetrics
) -> None:
    pki, broker, cloud = secured
    assert broker.proc is not None
    pid = broker.proc.pid
    db_url = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
    settings = [
        agent_settings(tmp_path, 1, new_id(f"RL{i}"), simulate=False, telemetry_interval_s=3600)
        for i in range(3)
    ]
    links = [await enrolled_link(cloud.url, s.state_dir, s.terminal_id) for s in settings]

    def start(i: int) -> tuple[Agent, asyncio.Task[None]]:
        agent = Agent(settings[i], link=links[i])
        return agent, asyncio.create_task(agent.run())

    running = [start(i) for i in range(3)]
    api = cloud
    try:
        for agent, _ in running:
            await asyncio.wait_for(agent.connected.wait(), 30)
        # Ingest stored each start sample: every persistent session exists and is in use.
        await eventually(lambda: _true(all(a.spool.depth() == 0 for a, _ in running)), timeout=60)

        # Away: two agents and the API (its ingest, desk and fleet links) leave their
        # sessions offline; the third agent stays connected.
        for agent, task in running[:2]:
            agent.stop()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(procs.stop, api.proc)

        os.kill(pid, signal.SIGHUP)  # the CRL-ageing reload (a revocation's does the same)
        await eventually(lambda: _true(_reloads(pki) == 1), timeout=30)

        # Back: the API takes its services' sessions over, agent 0 its own.
        api = await asyncio.to_thread(
            start_cloud,
            tmp_path,
            db_url,
            broker.cfg.port,
            victoria.url,
            create_operator=False,
            ready_s=120,
            CUNTONG_CLOUD_STATE_DIR=str(pki),
            CUNTONG_CLOUD_ADMIN_TOKEN=FACTORY_TOKEN,
        )
        running[0] = start(0)
        await asyncio.wait_for(running[0][0].connected.wait(), 30)

        # The sweep, after the reload: agent 1 counts as away for over a week; the leader's
        # pass ends its session (a takeover), and another instance's leader links.
        await open_db(db_url, upgrade=False)
        try:
            away = settings[1].terminal_id
            week_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=8)
            await Terminal.filter(id=away).update(online=False, last_seen_at=week_ago)
            cloud_settings = CloudSettings(
                db_url=db_url, broker_port=broker.cfg.port, state_dir=pki
            )
            security = Security.build(cloud_settings, dt.datetime.now(dt.UTC))
            swept = await security.sweep_once(SessionSweep(), dt.datetime.now(dt.UTC))
            assert swept == [away]
            ended = await security.end_stale_service_links(dt.datetime.now(dt.UTC))
            assert ended == ["api2-desk", "api2-fleet"]
        finally:
            await close_db()

        running[1] = start(1)
        await asyncio.wait_for(running[1][0].connected.wait(), 30)
        # The links work after all of it: each agent's start sample is confirmed stored.
        await eventually(lambda: _true(all(a.spool.depth() == 0 for a, _ in running)), timeout=60)
        assert broker.proc.poll() is None, "the broker died"
        assert broker.proc.pid == pid
        assert _reloads(pki) == 1

        for agent, task in running:
            agent.stop()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(procs.stop, api.proc)
        # SIGTERM walks the session-expiry list: a clean exit, not the abort in
        # will_delay__remove.
        assert procs.stop(broker.proc) == 0
    finally:
        for agent, task in running:
            agent.stop()
            await asyncio.gather(task, return_exceptions=True)
        procs.stop(api.proc)
