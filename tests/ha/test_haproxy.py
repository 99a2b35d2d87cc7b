"""Two API replicas behind a real HAProxy, configured by ``cuntong.deploy.haproxy_config``
(what ``cuntong deploy render`` writes), one of them killed with SIGKILL under traffic.

Real processes: Mosquitto, Janus (so the leader runs a teller desk), VictoriaMetrics, two
``cuntong api`` on one SQLite file, and ``haproxy``. Terminal-API traffic (the fleet's
terminals and commands lists) must not fail at all: HAProxy retries a refused connection
on the other replica and takes the dead one out by its health check. Teller traffic (a
supervisor watching the live calls) goes to the leader only (``/healthz/leader``); when the
leader dies it fails until the standby has taken the lease and passed a check, then succeeds
again through the same address — the test counts those failures (``bench/failover.py``
measures them).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx

from common import procs
from cuntong.deploy import haproxy_config
from cuntong.servers.janus import Janus
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from tests.helpers import (
    OPERATOR,
    OPERATOR_PASSWORD,
    CloudProcess,
    create_account,
    eventually,
    start_cloud,
)

TELLER, TELLER_PASSWORD = "supervisor-ha", "supervisor-password-for-ha-tests"


@dataclasses.dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)


def _replicas(tmp: Path, broker: Broker, janus: Janus, tsdb: str) -> tuple[list[CloudProcess], str]:
    db = f"sqlite://{tmp / 'cloud.sqlite3'}"
    create_account(db, OPERATOR, OPERATOR_PASSWORD, "fleet_operator")
    create_account(db, TELLER, TELLER_PASSWORD, "supervisor")
    media = {
        "CUNTONG_CLOUD_JANUS_URL": janus.url,
        "CUNTONG_CLOUD_JANUS_ADMIN_URL": janus.admin_url,
        "CUNTONG_CLOUD_JANUS_ADMIN_SECRET": janus.cfg.admin_secret,
        "CUNTONG_CLOUD_JANUS_ROOM_KEY": janus.cfg.room_admin_key,
        "CUNTONG_CLOUD_JANUS_REC_DIR": str(tmp / "rec"),
        "CUNTONG_CLOUD_ARCHIVE_DIR": str(tmp / "archive"),
        "CUNTONG_CLOUD_LEASE_TTL_S": "2",
    }
    replicas = []
    for name in ("a", "b"):
        ingest = {"CUNTONG_CLOUD_INGEST_CLIENT_ID": f"ingest-{name}"}
        replicas.append(
            start_cloud(tmp, db, broker.cfg.port, tsdb, create_operator=False, **ingest, **media)
        )
    return replicas, db


@contextlib.contextmanager
def _haproxy(tmp: Path, replicas: list[CloudProcess]) -> Iterator[str]:
    port = procs.free_port()
    apis = [(f"api-{i}", "127.0.0.1", int(r.url.rsplit(":", 1)[1])) for i, r in enumerate(replicas)]
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(haproxy_config("127.0.0.1", port, apis, maxconn=2000))
    proc = procs.start([procs.find_binary("haproxy"), "-db", "-f", str(cfg)], tmp / "haproxy.log")
    try:
        procs.wait_for_port(port, timeout=15, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        procs.stop(proc)


async def _token(url: str, account: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        r = await http.post("/api/v1/auth/login", json={"username": account, "password": password})
        r.raise_for_status()
        return str(r.json()["token"])


async def _traffic(
    url: str, token: str, paths: list[str], tally: Tally, stop: asyncio.Event
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=headers) as http:
        while not stop.is_set():
            for path in paths:
                try:
                    r = await http.get(path)
                    if r.status_code == 200:
                        tally.ok += 1
                    else:
                        tally.failed += 1
                        tally.errors.append(f"{path}: {r.status_code}")
                except httpx.HTTPError as err:
                    tally.failed += 1
                    tally.errors.append(f"{path}: {err!r}")
            await asyncio.sleep(0.02)


async def _leader(replicas: list[CloudProcess]) -> CloudProcess | None:
    for r in replicas:
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(base_url=r.url, timeout=3) as http:
                if (await http.get("/healthz/leader")).status_code == 200:
                    return r
    return None


async def test_kill_a_replica_behind_haproxy_under_traffic(
    tmp_path: Path, broker: Broker, janus: Janus, victoria: VictoriaMetrics
) -> None:
    replicas, _ = _replicas(tmp_path, broker, janus, victoria.url)
    stop = asyncio.Event()
    try:
        leader = await eventually(lambda: _leader(replicas), timeout=30)
        with _haproxy(tmp_path, replicas) as url:
            ops = await _token(url, OPERATOR, OPERATOR_PASSWORD)
            teller = await _token(url, TELLER, TELLER_PASSWORD)

            async def teller_ok() -> bool:
                async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                    r = await http.get(
                        "/api/v1/teller/live", headers={"Authorization": f"Bearer {teller}"}
                    )
                    return r.status_code == 200

            assert await eventually(teller_ok, timeout=30)  # the desk answers via HAProxy
            fleet, desk = Tally(), Tally()
            loads = [
                asyncio.create_task(
                    _traffic(url, ops, ["/api/v1/terminals", "/api/v1/fleet/commands"], t, stop)
                )
                for t in (fleet, Tally())
            ]
            loads.append(
                asyncio.create_task(_traffic(url, teller, ["/api/v1/teller/live"], desk, stop))
            )
            await eventually(lambda: asyncio.sleep(0, fleet.ok > 20 and desk.ok > 5))
            leader.proc.kill()  # SIGKILL: no goodbye, its lease left to expire
            leader.proc.wait()
            survivor = next(r for r in replicas if r is not leader)
            assert await eventually(lambda: _leader([survivor]), timeout=30)
            # The desk answers again through the same address, on the other replica.
            before = desk.ok
            await eventually(lambda: asyncio.sleep(0, desk.ok > before + 5), timeout=30)
            fleet_ok_at_takeover = fleet.ok
            await eventually(
                lambda: asyncio.sleep(0, fleet.ok > fleet_ok_at_takeover + 20), timeout=30
            )
            stop.set()
            await asyncio.gather(*loads)
        print(
            f"terminal API: {fleet.ok} ok, {fleet.failed} failed; "
            f"teller API: {desk.ok} ok, {desk.failed} failed during the takeover"
        )
        assert fleet.failed == 0, fleet.errors[:5]
    finally:
        stop.set()
        for r in replicas:
            procs.stop(r.proc)
