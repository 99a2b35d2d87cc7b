"""The high-availability rig: API replicas on one database, HAProxy in front (configured by
``cuntong.deploy.haproxy_config``), traffic that counts its failures. Used by
``tests/ha/test_haproxy.py`` and ``bench/failover.py``."""

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
from tests.helpers import (
    OPERATOR,
    OPERATOR_PASSWORD,
    CloudProcess,
    create_account,
    start_cloud,
)

SUPERVISOR, SUPERVISOR_PASSWORD = "supervisor-ha", "supervisor-password-for-ha-tests"
LEASE_TTL_S = "2"
#: The routes of each kind of traffic: any replica serves the first, the leader the second.
TERMINAL_API = ["/api/v1/terminals", "/api/v1/fleet/commands"]
DESK_API = ["/api/v1/teller/live"]


@dataclasses.dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Replicas:
    """API replicas on one SQLite file, each with the desk's media (the leader runs it)."""

    tmp: Path
    broker: Broker
    janus: Janus
    tsdb: str
    procs: list[CloudProcess] = dataclasses.field(default_factory=list)

    @property
    def db(self) -> str:
        return f"sqlite://{self.tmp / 'cloud.sqlite3'}"

    def start(self, n: int = 2) -> Replicas:
        create_account(self.db, OPERATOR, OPERATOR_PASSWORD, "fleet_operator")
        create_account(self.db, SUPERVISOR, SUPERVISOR_PASSWORD, "supervisor")
        self.procs = [self.replica(i) for i in range(n)]
        return self

    def replica(self, i: int, port: int | None = None) -> CloudProcess:
        """Replica ``i`` (``port``: the one it had, when it is started again)."""
        return start_cloud(
            self.tmp, self.db, self.broker.cfg.port, self.tsdb, create_operator=False,
            port=port, CUNTONG_CLOUD_INGEST_CLIENT_ID=f"ingest-{i}",
            CUNTONG_CLOUD_JANUS_URL=self.janus.url,
            CUNTONG_CLOUD_JANUS_ADMIN_URL=self.janus.admin_url,
            CUNTONG_CLOUD_JANUS_ADMIN_SECRET=self.janus.cfg.admin_secret,
            CUNTONG_CLOUD_JANUS_ROOM_KEY=self.janus.cfg.room_admin_key,
            CUNTONG_CLOUD_JANUS_REC_DIR=str(self.tmp / "rec"),
            CUNTONG_CLOUD_ARCHIVE_DIR=str(self.tmp / "archive"),
            CUNTONG_CLOUD_LEASE_TTL_S=LEASE_TTL_S,
        )  # fmt: skip

    def restart(self, i: int) -> None:
        """Start replica ``i`` again on its port (after it was killed)."""
        port = int(self.procs[i].url.rsplit(":", 1)[1])
        self.procs[i] = self.replica(i, port)

    def stop(self) -> None:
        for p in self.procs:
            procs.stop(p.proc)


@contextlib.contextmanager
def haproxy(tmp: Path, replicas: list[CloudProcess]) -> Iterator[str]:
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


async def token(url: str, account: str, password: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        r = await http.post("/api/v1/auth/login", json={"username": account, "password": password})
        r.raise_for_status()
        return str(r.json()["token"])


async def traffic(
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


async def find_leader(replicas: list[CloudProcess]) -> CloudProcess | None:
    for r in replicas:
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(base_url=r.url, timeout=3) as http:
                if (await http.get("/healthz/leader")).status_code == 200:
                    return r
    return None
