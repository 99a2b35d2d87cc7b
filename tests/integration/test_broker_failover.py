"""Broker failover with real processes: two mTLS Mosquittos under one CA, the cloud API
(ingest, command sender) subscribed on both, enrolled agents; the first broker is killed
with SIGKILL under load. Also: a terminal follows a broker that moved (issue 17)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.security import broker_services
from common import procs
from common.errors import SpoolFull
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.agent import Agent
from provisioning import wiring
from tests.helpers import FACTORY_TOKEN, CloudProcess, enrolled_link, eventually, start_cloud
from tests.integration.agents import agent_settings, new_id

SERVICES = broker_services("api")


def _broker(pki: Path, root: Path, index: int, port: int | None = None) -> Broker:
    now = dt.datetime.now(dt.UTC)
    cfg, _ = wiring.secure_broker(
        pki, port or procs.free_port(), now, services=SERVICES, index=index
    )
    return Broker(cfg, root / f"mosquitto-{index}").start()


def _cloud(
    tmp: Path, pki: Path, brokers: list[Broker], tsdb: str, port: int | None = None
) -> CloudProcess:
    return start_cloud(
        tmp,
        f"sqlite://{tmp / 'cloud.sqlite3'}",
        brokers[0].cfg.port,
        tsdb,
        create_operator=port is None,
        port=port,
        CUNTONG_CLOUD_STATE_DIR=str(pki),
        CUNTONG_CLOUD_ADMIN_TOKEN=FACTORY_TOKEN,
        CUNTONG_CLOUD_BROKERS=json.dumps([f"127.0.0.1:{b.cfg.port}" for b in brokers]),
    )


def _kill(broker: Broker) -> None:
    """SIGKILL: no will, no goodbye, no saved state."""
    assert broker.proc is not None
    broker.proc.kill()
    broker.proc.wait()
    broker.proc = None


@pytest.fixture
def two_brokers(tmp_path: Path) -> Iterator[tuple[Path, list[Broker]]]:
    pki = tmp_path / "cloud"
    brokers = [_broker(pki, tmp_path, 0), _broker(pki, tmp_path, 1)]
    try:
        yield pki, brokers
    finally:
        for b in brokers:
            b.stop()


async def _agent(tmp: Path, cloud: CloudProcess, tid: str, **kw: object) -> Agent:
    settings = agent_settings(tmp, 1, tid, simulate=False, **kw)
    link = await enrolled_link(cloud.url, settings.state_dir, tid)
    return Agent(settings, link=link)


async def _stored_seqs(http: Any, tid: str) -> set[int]:
    r = await http.get(f"/api/v1/terminals/{tid}/events", params={"limit": 1000})
    return {e["seq"] for e in r.json()} if r.status_code == 200 else set()


async def test_kill_first_broker_under_load_loses_no_event_and_no_command(
    tmp_path: Path, two_brokers: tuple[Path, list[Broker]], victoria: VictoriaMetrics
) -> None:
    pki, (first, second) = two_brokers
    cloud = _cloud(tmp_path, pki, [first, second], victoria.url)
    agents: list[Agent] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        for _ in range(2):
            agents.append(await _agent(tmp_path, cloud, new_id("FO")))
        ports = [(b.host, b.port) for b in agents[0].link.brokers]  # type: ignore[union-attr]
        assert ports == [("127.0.0.1", first.cfg.port), ("127.0.0.1", second.cfg.port)]
        tasks = [asyncio.create_task(a.run()) for a in agents]
        for a in agents:
            await asyncio.wait_for(a.connected.wait(), 15)
            assert a.brokers.current.port == first.cfg.port
        emitted: dict[str, set[int]] = {a.tid: set() for a in agents}
        stop_load = asyncio.Event()

        async def load(agent: Agent) -> None:
            n = 0
            while not stop_load.is_set():
                with contextlib.suppress(SpoolFull):
                    emitted[agent.tid].add(agent.emit_event("pin_entered", {"n": n}))
                n += 1
                await asyncio.sleep(0.02)

        loads = [asyncio.create_task(load(a)) for a in agents]
        async with cloud.client() as http:
            await asyncio.sleep(1.0)
            _kill(first)
            # Queued while the terminals are between brokers: delivered on the second.
            body = {"name": "ping", "terminals": [a.tid for a in agents], "args": {"k": 1}}
            r = await http.post("/api/v1/fleet/commands", json=body)
            assert r.status_code in (200, 201), r.text
            command_ids = r.json()["commands"]
            await asyncio.sleep(1.5)
            stop_load.set()
            await asyncio.gather(*loads)

            for a in agents:
                await eventually(lambda a=a: _on(a, second.cfg.port), timeout=20)
            # One broker of two down is a reduced service, not a stop: /healthz stays 200
            # (a load balancer checking it keeps every replica) and names the broker.
            health = await http.get("/healthz")
            assert health.status_code == 200, health.text
            assert health.json()["ingest"] == (
                f"reduced: not subscribed on broker(s) 127.0.0.1:{first.cfg.port}"
            ), health.text

            for a in agents:

                async def all_stored(tid: str = a.tid) -> bool | None:
                    return (await _stored_seqs(http, tid)) >= emitted[tid] or None

                try:
                    await eventually(all_stored, timeout=30)
                except AssertionError:
                    missing = sorted(emitted[a.tid] - await _stored_seqs(http, a.tid))
                    raise AssertionError(f"{a.tid} lost {missing} ({cloud.log})") from None
                assert len(emitted[a.tid]) > 50  # the load ran across the kill

            async def finals() -> list[dict[str, Any]] | None:
                rows = [
                    (await http.get(f"/api/v1/fleet/commands/{cid}")).json() for cid in command_ids
                ]
                return rows if all(c["state"] not in ("queued", "sent") for c in rows) else None

            done = await eventually(finals, timeout=30)
        assert [c["state"] for c in done] == ["succeeded", "succeeded"], done
        assert {c["result"]["command_id"] for c in done} == set(command_ids)
    finally:
        for a in agents:
            a.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        procs.stop(cloud.proc)


async def test_terminal_follows_a_broker_that_moved(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    """Issue 17: ``cuntong up`` restarted on its state folder gave the broker another port;
    the terminal finds none of its brokers, asks the enrolment API, and follows."""
    pki = tmp_path / "cloud"
    broker = _broker(pki, tmp_path, 0)
    cloud = _cloud(tmp_path, pki, [broker], victoria.url)
    tid = new_id("MV")
    agent = await _agent(tmp_path, cloud, tid, broker_list_every_s=0.5)
    task = asyncio.create_task(agent.run())
    moved: Broker | None = None
    try:
        await asyncio.wait_for(agent.connected.wait(), 15)
        old_port = broker.cfg.port
        procs.stop(cloud.proc)
        broker.stop()
        # The same broker folder (its saved dynamic-security state) on a new port.
        moved = _broker(pki, tmp_path, 0, procs.free_port())
        # The enrolment API stays where the claim says (a stable name in production).
        cloud = _cloud(tmp_path, pki, [moved], victoria.url, port=int(cloud.url.rsplit(":")[-1]))
        await eventually(lambda: _on(agent, moved.cfg.port), timeout=30)
        assert moved.cfg.port != old_port
        stored = agent.link.identity.info()  # type: ignore[union-attr]
        assert [b["port"] for b in stored["brokers"]] == [moved.cfg.port]  # kept for restarts
        seq = agent.emit_event("pin_entered", {"after": "move"})
        async with cloud.client() as http:
            await eventually(lambda: _has(http, tid, seq), timeout=20)
    finally:
        agent.stop()
        await asyncio.gather(task, return_exceptions=True)
        procs.stop(cloud.proc)
        broker.stop()
        if moved is not None:
            moved.stop()


async def _has(http: Any, tid: str, seq: int) -> bool | None:
    return seq in await _stored_seqs(http, tid) or None


async def _on(agent: Agent, port: int) -> bool | None:
    return (agent.connected.is_set() and agent.brokers.current.port == port) or None
