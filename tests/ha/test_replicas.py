"""Two real API replicas on one database (issue 17): the cloud's singletons run on the lease
holder only, a paused old leader does nothing when it wakes, and a killed leader is replaced
without any command going out twice. A leader paused with a rollout beat already decided
(the ``rollout-write`` failpoint, ``common.failpoints``) has that write refused by the fence
when it wakes after the takeover, so an operator's pause made meanwhile stands.

Real processes: Mosquitto, two ``cuntong api`` on one SQLite file, VictoriaMetrics, and
in-process agents answering commands. A watcher on the broker counts every command
publish by its correlation data (the command id): each must appear at most once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx
import psutil

from common import procs
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from tests.helpers import CloudProcess, eventually, start_cloud
from tests.integration.agents import make_agent, new_id

TTL_S = "2"


def _replica(tmp: Path, db: str, broker: Broker, tsdb: str, name: str, first: bool) -> CloudProcess:
    return start_cloud(
        tmp,
        db,
        broker.cfg.port,
        tsdb,
        create_operator=first,
        CUNTONG_CLOUD_LEASE_TTL_S=TTL_S,
        CUNTONG_CLOUD_INGEST_CLIENT_ID=f"ingest-{name}",
    )


async def _leads(cloud: CloudProcess) -> bool:
    try:
        async with httpx.AsyncClient(base_url=cloud.url, timeout=3) as http:
            return (await http.get("/healthz/leader")).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.asynccontextmanager
async def _wire_watch(port: int) -> AsyncIterator[collections.Counter[str]]:
    """Every command publish on the broker, counted by command id."""
    seen: collections.Counter[str] = collections.Counter()
    ready = asyncio.Event()

    async def watch() -> None:
        async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
            await client.subscribe("cuntong/v1/t/+/cmd/#", qos=1)
            ready.set()
            async for message in client.messages:
                corr = getattr(message.properties, "CorrelationData", None)
                if corr:
                    seen[bytes(corr).decode()] += 1

    task = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _send(cloud: CloudProcess, tids: list[str], n: int) -> list[str]:
    async with cloud.client() as http:
        body = {"name": "ping", "terminals": tids, "args": {"n": n}}
        r = await http.post("/api/v1/fleet/commands", json=body)
        assert r.status_code == 201, r.text
        return list(r.json()["commands"])


async def _states(cloud: CloudProcess, ids: list[str]) -> dict[str, str]:
    async with cloud.client() as http:
        out = {}
        for cid in ids:
            r = await http.get(f"/api/v1/fleet/commands/{cid}")
            assert r.status_code == 200, r.text
            out[cid] = r.json()["state"]
        return out


async def test_lease_moves_between_replicas_and_no_command_goes_out_twice(
    tmp_path: Path, broker: Broker, victoria: VictoriaMetrics
) -> None:
    db = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
    a = _replica(tmp_path, db, broker, victoria.url, "a", first=True)
    b = _replica(tmp_path, db, broker, victoria.url, "b", first=False)
    b.token = a.token  # one database: one account, one session store
    agents = [make_agent(tmp_path, broker.cfg.port, new_id("HA")) for _ in range(2)]
    tids = [agent.tid for agent in agents]
    runs = [asyncio.create_task(agent.run()) for agent in agents]
    stopped = False
    try:
        for agent in agents:
            await asyncio.wait_for(agent.connected.wait(), 15)
        # Exactly one leads (a started first and took the lease).
        assert await eventually(lambda: _leads(a), timeout=20)
        assert not await _leads(b)
        async with _wire_watch(broker.cfg.port) as seen:
            # Routes work on the standby; the leader's sender delivers.
            first = await _send(b, tids, 1)
            await eventually(lambda: _all(b, first, {"succeeded"}), timeout=30, every=0.3)

            # A paused leader: b takes over; commands queued meanwhile go out once, and
            # a woken a does not act on the lease it lost.
            os.kill(a.proc.pid, signal.SIGSTOP)
            stopped = True
            assert await eventually(lambda: _leads(b), timeout=30, every=0.3)
            during = await _send(b, tids, 2)
            await eventually(lambda: _all(b, during, {"succeeded"}), timeout=30, every=0.3)
            os.kill(a.proc.pid, signal.SIGCONT)
            stopped = False
            after_wake = await _send(a, tids, 3)  # through the woken replica's routes
            await eventually(lambda: _all(b, after_wake, {"succeeded"}), timeout=30, every=0.3)
            assert await _leads(b) and not await _leads(a)

            # The leader killed outright: a takes the lease back and delivers.
            queued_before_kill = await _send(a, tids, 4)
            b.proc.kill()
            b.proc.wait()
            assert await eventually(lambda: _leads(a), timeout=30, every=0.3)
            after_kill = await _send(a, tids, 5)
            await eventually(lambda: _all(a, after_kill, {"succeeded"}), timeout=30, every=0.3)
            # Commands b held when it died: delivered once, or (marked sent, never
            # published) timed out, never sent again.
            final = await eventually(
                lambda: _all(a, queued_before_kill, {"succeeded", "timed_out"}, True),
                timeout=40,
                every=0.5,
            )
            for cid, state in final.items():
                if state == "timed_out":
                    assert seen[cid] == 0, f"{cid} went out but was recorded timed out"
            await asyncio.sleep(1.0)  # late duplicates would arrive by now
            every_id = first + during + after_wake + queued_before_kill + after_kill
            twice = {cid: n for cid, n in seen.items() if n > 1}
            assert not twice, f"commands published more than once: {twice}"
            assert all(seen[cid] == 1 for cid in first + during + after_wake + after_kill)
            assert len(every_id) == 10
    finally:
        if stopped:
            os.kill(a.proc.pid, signal.SIGCONT)
        for agent in agents:
            agent.stop()
        await asyncio.gather(*runs, return_exceptions=True)
        procs.stop(a.proc)
        procs.stop(b.proc)


async def _all(
    cloud: CloudProcess, ids: list[str], wanted: set[str], give: bool = False
) -> dict[str, str] | bool:
    states = await _states(cloud, ids)
    if all(s in wanted for s in states.values()):
        return states if give else True
    return False


def _closed_window() -> str:
    """A one-hour maintenance window (UTC+8, the plan's default offset) starting two hours
    from now: the rollout stays running, and every beat writes it, but sends nothing."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8 + 2)).hour
    return f"{start:02d}:00-{(start + 1) % 24:02d}:00"


def _stopped(pid: int) -> bool:
    return psutil.Process(pid).status() == psutil.STATUS_STOPPED


async def _phase(cloud: CloudProcess, rollout_id: str) -> str:
    async with cloud.client() as http:
        r = await http.get(f"/api/v1/fleet/rollouts/{rollout_id}")
        assert r.status_code == 200, r.text
        return str(r.json()["phase"])


async def test_a_paused_leaders_rollout_write_in_flight_is_refused_after_the_takeover(
    tmp_path: Path, broker: Broker, victoria: VictoriaMetrics
) -> None:
    db = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
    # a stops itself (SIGSTOP) at its first rollout beat, between deciding and writing.
    a = start_cloud(
        tmp_path, db, broker.cfg.port, victoria.url, create_operator=True,
        CUNTONG_CLOUD_LEASE_TTL_S=TTL_S, CUNTONG_CLOUD_INGEST_CLIENT_ID="ingest-a",
        CUNTONG_FAILPOINTS="rollout-write",
    )  # fmt: skip
    b = _replica(tmp_path, db, broker, victoria.url, "b", first=False)
    b.token = a.token
    stopped = False
    try:
        assert await eventually(lambda: _leads(a), timeout=20)
        async with a.client() as http:
            group = {"name": "fence", "kind": "static", "members": [new_id("HA")]}
            assert (await http.post("/api/v1/fleet/groups", json=group)).status_code == 201
            body = {
                "name": "fenced",
                "group": "fence",
                "args": {"component": "agent", "version": "9.9.9", "manifest": "-",
                         "signature": "-"},
                "plan": {"canary": 1, "window": _closed_window()},
            }  # fmt: skip
            r = await http.post("/api/v1/fleet/rollouts", json=body)
            assert r.status_code == 201, r.text
            rollout_id = r.json()["id"]
        # a froze at its beat's write (its own log says so just before): b takes over.
        stopped = await eventually(lambda: _async(_stopped(a.proc.pid)), timeout=20)
        assert "failpoint rollout-write: stopping" in a.log.read_text()
        assert await eventually(lambda: _leads(b), timeout=30, every=0.3)
        # The operator pauses the rollout through the new leader.
        async with b.client() as http:
            r = await http.post(f"/api/v1/fleet/rollouts/{rollout_id}/pause")
            assert r.status_code == 200, r.text
        assert await _phase(b, rollout_id) == "paused"
        mark = len(a.log.read_text())
        os.kill(a.proc.pid, signal.SIGCONT)
        stopped = False

        # a wakes with its beat decided ("running"): the fence refuses it, and a is a
        # standby again (its lease attempts queue behind any write it had handed over).
        def woke() -> bool:
            return "lease cloud: standby" in a.log.read_text()[mark:]

        await eventually(lambda: _async(woke()), timeout=30, every=0.3)
        after = a.log.read_text()[mark:]
        # Unfenced, a's stale "running" lands over the pause and b resumes the rollout.
        assert await _phase(b, rollout_id) == "paused", "the old leader's beat undid the pause"
        assert "rollout beat refused: lease cloud epoch" in after, after
        assert await _leads(b) and not await _leads(a)
    finally:
        if stopped:
            os.kill(a.proc.pid, signal.SIGCONT)
        procs.stop(a.proc)
        procs.stop(b.proc)


async def _async(value: bool) -> bool:
    return value
