"""Issue 17 item 5: a whole deployment on several hosts, from what ``cuntong deploy render``
writes, and what survives when a host dies.

Hosts are network namespaces on a bridge (``tests/ha/netns.py``): a database host
(PostgreSQL, which the render does not install, so the test starts it there, and the
rendered VictoriaMetrics), two broker hosts (Mosquitto, mTLS), two cloud hosts (API and
ingest on each), a load balancer host (the rendered HAProxy in front of both APIs), a media
host (Janus) and three terminal hosts (the rendered agent unit, simulated devices). Every
service is the real program started from its rendered unit (``ExecStartPre``,
``ExecStart``, ``Environment``, ``EnvironmentFile``, ``User`` as a numeric id,
``Type=notify`` readiness) by ``UnitRunner``, since systemd is not PID 1 here.

Then hosts lose power one after another (every process in the namespace, SIGKILL): the
first broker host; the cloud host holding the lease; the database host (started again from
its files); the media host (started again). Measured and asserted: every terminal reaches
the second broker; business events keep landing in the database through each failure; the
other cloud host takes the lease and its desk answers through the load balancer, which
answered every read of the terminals list while the replica died; a command queued there
then succeeds on every terminal; with the database down the cloud host says it is degraded
and the terminals hold their events, all of which are stored once it is back; with the
media host down its node is marked unhealthy and the desk still answers; and every message
each terminal spooled up to the end was confirmed stored by ingest (its spool lets a
message go only then), i.e. none was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from common import procs
from provisioning.files import write_private
from provisioning.protocol import FactoryClaim, Region
from tests.ha.netns import Lab, UnitRunner
from tests.ha.rig import SUPERVISOR, SUPERVISOR_PASSWORD, token
from tests.helpers import (
    OPERATOR,
    OPERATOR_PASSWORD,
    create_account,
    eventually,
    service_prefix,
)

TERMINALS = ["term-1", "term-2", "term-3"]
HOSTS = ["db", "broker-1", "broker-2", "cloud-1", "cloud-2", "lb", "media", *TERMINALS]
ROLES = {
    "db": ["victoria-metrics"],
    "lb": ["haproxy"],
    "broker-1": ["mosquitto"],
    "broker-2": ["mosquitto"],
    "cloud-1": ["api", "ingest"],
    "cloud-2": ["api", "ingest"],
    "media": ["janus"],
    **{t: ["terminal"] for t in TERMINALS},
}
#: What the test adds to the rendered agent unit, as an operator's drop-in would: a
#: simulated terminal that reports every 0.5 s (and so may have a customer event every
#: second), and sends again what ingest has not confirmed after 5 s (default 60 s): what
#: was in flight to the dead cloud host's ingest comes back that much sooner.
AGENT_DROPIN = """[Service]
Environment=CUNTONG_AGENT_SIMULATE=true
Environment=CUNTONG_AGENT_TELEMETRY_INTERVAL_S=0.5
Environment=CUNTONG_AGENT_BACKOFF_BASE_S=0.5
Environment=CUNTONG_AGENT_BACKOFF_CAP_S=2
Environment=CUNTONG_AGENT_ACK_TIMEOUT_S=5
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("setpriv") is None,
    reason="needs root, iproute2 and setpriv (network namespaces)",
)


def _tid(host: str) -> str:
    return f"MH-{host}"


@contextlib.contextmanager
def _lab() -> Iterator[tuple[Lab, Path]]:
    # Not under pytest's tmp dir (root-only): the services run as their own ids.
    base = Path(tempfile.mkdtemp(prefix="cuntong-mh-"))
    base.chmod(0o755)
    lab = Lab(HOSTS)
    try:
        lab.up()
        yield lab, base
    except BaseException:
        # What each service said, for the failure report (the folder goes with the lab).
        for log in sorted(base.glob("hosts/*/*.log")) + sorted(base.glob("pg/*.log")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {log.relative_to(base)}", *tail, sep="\n")
        if os.environ.get("CUNTONG_MULTIHOST_KEEP"):
            lab.close()
            print(f"kept {base}")
            raise
        raise
    finally:
        lab.close()
        if not os.environ.get("CUNTONG_MULTIHOST_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


def _service_prefix(base: Path) -> Path:
    """The installation the services run from (``tests.helpers.service_prefix``)."""
    return service_prefix(base / "prefix")


def _inventory(lab: Lab, base: Path) -> Path:
    lines = [
        "[deployment]",
        f'prefix = "{_service_prefix(base)}"',
        f'db_url = "postgres://postgres@{lab.address("db")}:5432/postgres"',
    ]
    for host in HOSTS:
        lines += ["", "[[hosts]]", f'name = "{host}"', f'address = "{lab.address(host)}"']
        lines.append(f"roles = {json.dumps(ROLES[host])}")
        if host in TERMINALS:
            lines.append(f'terminal_id = "{_tid(host)}"')
    path = base / "inventory.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _render(inventory: Path, out: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    argv = ["deploy", "render", "--inventory", str(inventory), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "cuntong", *argv],
        env=clean, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for host in TERMINALS:
        dropin = out / host / "etc/systemd/system/cuntong-agent.service.d/lab.conf"
        dropin.parent.mkdir(parents=True)
        dropin.write_text(AGENT_DROPIN)


_AS_PG = ["runuser", "-u", "postgres", "--"]


def _postgres(lab: Lab, base: Path) -> subprocess.Popen[bytes]:
    """PostgreSQL on the database host, reachable from the lab's subnet."""
    data = base / "pg" / "data"
    data.mkdir(parents=True)
    pw = pwd.getpwnam("postgres")
    for p in (data, data.parent):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    subprocess.run(
        [*_AS_PG, procs.find_binary("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all 10.213.{lab.subnet}.0/24 trust\n")
    return _postgres_start(lab, base)


def _postgres_start(lab: Lab, base: Path) -> subprocess.Popen[bytes]:
    """Start PostgreSQL on the database host from its data folder (also after the host was
    killed: the server recovers from its own write-ahead log); returns once it accepts."""
    data = base / "pg" / "data"
    # After a kill: PostgreSQL refuses to start while the old postmaster's pid exists, and
    # a killed one is a zombie until PID 1 reaps it (a rebooted host has no such pid).
    lock = data / "postmaster.pid"
    if lock.exists():
        old = Path("/proc") / lock.read_text().split()[0]
        deadline = time.monotonic() + 60
        while old.exists():
            assert time.monotonic() < deadline, f"the killed postmaster {old} is still there"
            time.sleep(0.2)
    log = (base / "pg" / "postgres.log").open("ab")
    in_db = ["ip", "netns", "exec", lab.ns("db")]
    where = ["-h", lab.address("db"), "-p", "5432"]
    server = [procs.find_binary("postgres"), "-D", str(data), *where, "-k", str(data)]
    # fsync=off: a killed process loses nothing the kernel holds; only a machine crash would.
    proc = subprocess.Popen(
        [*in_db, *_AS_PG, *server, "-c", "fsync=off"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    ready = [*in_db, procs.find_binary("pg_isready"), "-q", *where, "-U", "postgres"]
    while subprocess.run(ready, check=False).returncode:
        assert proc.poll() is None and time.monotonic() < deadline, "PostgreSQL did not start"
        time.sleep(0.2)
    return proc


async def _http_ok(url: str) -> bool | None:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=3) as http:
            return (await http.get(url)).status_code == 200 or None
    return None


def _factory_claims(lab: Lab, runners: dict[str, UnitRunner], admin_token: str) -> None:
    """Play the factory, as ``cuntong up`` does: one batch claim from the API, a claim file
    in each terminal's state folder, the CA read from the enrolment listener."""
    api = f"http://{lab.address('cloud-1')}:8000"
    # Through the load balancer's TLS passthrough: any API host serves the terminals.
    enrol = f"https://{lab.address('lb')}:9443"
    ca_pem = httpx.get(f"{enrol}/api/v1/enrol/ca", timeout=10, verify=False).text
    created = httpx.post(
        f"{api}/api/v1/provisioning/claims",
        json={"uses": len(TERMINALS), "days": 1, "id_prefix": "MH-", "label": "multi-host"},
        headers={"Authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    created.raise_for_status()
    for host in TERMINALS:
        claim = FactoryClaim(
            enrol_url=enrol,
            ca_pem=ca_pem,
            claim_token=created.json()["token"],
            terminal_id=_tid(host),
            hardware_model="ZN-E100",
            region=Region(province="Yunnan", city="Kunming", county="Anning", village=host),
        )
        state = runners[host].path("/var/lib/cuntong/agent")
        path = state / "claim.json"
        write_private(path, claim.model_dump_json(indent=2).encode())
        owner = state.stat()
        os.chown(path, owner.st_uid, owner.st_gid)


async def _desk(api: str) -> bool | None:
    """The teller desk answers a supervisor on that API host (only the leader runs it)."""
    with contextlib.suppress(httpx.HTTPError):
        login = await token(api, SUPERVISOR, SUPERVISOR_PASSWORD)
        async with httpx.AsyncClient(base_url=api, timeout=5) as http:
            r = await http.get("/api/v1/teller/live", headers={"Authorization": f"Bearer {login}"})
            return r.status_code == 200 or None
    return None


def _start(runners: dict[str, UnitRunner], units: list[tuple[str, str]], timeout: float) -> None:
    """Start ``cuntong-<role>`` on each host at once (as systemd starts the hosts' units
    side by side); each is up once it said READY=1."""
    with ThreadPoolExecutor(len(units)) as pool:
        jobs = [pool.submit(runners[h].start, f"cuntong-{role}", timeout) for h, role in units]
        for job in jobs:
            job.result()


def _on_broker(lab: Lab, host: str, broker: str) -> bool:
    """The terminal host has an established MQTT connection to that broker (``ss``)."""
    ss = ["ss", "-Htn", "state", "established", "dst", f"{lab.address(broker)}:8883"]
    out = subprocess.run(
        ["ip", "netns", "exec", lab.ns(host), *ss],
        capture_output=True, text=True, check=False, timeout=10,
    ).stdout  # fmt: skip
    return bool(out.strip())


def _spool(runner: UnitRunner) -> tuple[int, int | None, int | None]:
    """The agent's spool: the last sequence number issued, the lowest one still waiting
    for ingest's confirmation, and the lowest such business event."""
    path = runner.path("/var/lib/cuntong/agent") / "spool.sqlite3"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        last = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'spool'").fetchone()[0]
        low = db.execute("SELECT min(seq) FROM spool").fetchone()[0]
        event = db.execute("SELECT min(seq) FROM spool WHERE kind = 'event'").fetchone()[0]
        return int(last), low, event
    finally:
        db.close()


#: HAProxy asks for about 2 x maxconn file descriptors at start. The rendered 20000 needs
#: 40032, above this machine's hard limit (20000), which the test cannot raise (its root
#: lacks CAP_SYS_RESOURCE); under systemd the default hard limit (524288) lets HAProxy
#: raise its own. So the lab's load balancer takes fewer connections.
LAB_HAPROXY_MAXCONN = 4000


def _fit_haproxy(runner: UnitRunner) -> None:
    cfg = runner.path("/etc/cuntong/haproxy/haproxy.cfg")
    text = cfg.read_text()
    assert "    maxconn 20000\n" in text, (
        "the rendered HAProxy config changed: see LAB_HAPROXY_MAXCONN"
    )
    cfg.write_text(text.replace("    maxconn 20000\n", f"    maxconn {LAB_HAPROXY_MAXCONN}\n"))


def _held(runner: UnitRunner, after: int) -> list[int]:
    """The business events the terminal spooled after sequence number ``after`` that ingest
    has not confirmed yet (its spool still holds them)."""
    path = runner.path("/var/lib/cuntong/agent") / "spool.sqlite3"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT seq FROM spool WHERE kind = 'event' AND seq > ? ORDER BY seq", (after,)
        )
        return [int(seq) for (seq,) in rows]
    finally:
        db.close()


async def _health(api: str) -> tuple[int, dict[str, object]] | None:
    """``/healthz`` of one API host: its status code and body."""
    with contextlib.suppress(httpx.HTTPError, ValueError):
        async with httpx.AsyncClient(timeout=5) as http:
            r = await http.get(f"{api}/healthz")
            return r.status_code, r.json()
    return None


class _Poller:
    """GET one route through the load balancer again and again (a fleet page refreshing)
    while a host dies: every answer's status, or the error's name."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url, self.headers = url, headers
        self.answers: list[int | str] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=15, headers=self.headers) as http:
            while True:
                try:
                    self.answers.append((await http.get(self.url)).status_code)
                except httpx.HTTPError as err:
                    self.answers.append(type(err).__name__)
                await asyncio.sleep(0.2)

    def __enter__(self) -> _Poller:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


# About 2.5 min alone; under a loaded full run the start alone can take minutes.
@pytest.mark.timeout(540)
async def test_a_deployment_on_several_hosts_survives_losing_hosts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    figures: dict[str, float | int | str] = {}
    began = time.monotonic()
    with _lab() as (lab, base):
        out = base / "rendered"
        _render(_inventory(lab, base), out)
        uids: dict[str, int] = {}
        runners = {h: UnitRunner(lab, h, out, base / "hosts" / h, uids) for h in HOSTS}
        _fit_haproxy(runners["lb"])
        _postgres(lab, base)
        runners["db"].start("cuntong-victoria-metrics")
        tsdb = f"http://{lab.address('db')}:8428/health"
        assert await eventually(lambda: _http_ok(tsdb), timeout=60)
        _start(runners, [("broker-1", "mosquitto"), ("broker-2", "mosquitto")], 180)
        runners["media"].start("cuntong-janus")
        janus = f"http://{lab.address('media')}:8088/janus/info"
        assert await eventually(lambda: _http_ok(janus), timeout=60)
        _start(runners, [("cloud-1", "api"), ("cloud-2", "api")], 180)
        _start(runners, [("cloud-1", "ingest"), ("cloud-2", "ingest"), ("lb", "haproxy")], 120)
        # The load balancer's address: what teller pages, supervisors and the fleet
        # dashboard use (the rendered HAProxy on port 80, health-checking both replicas).
        lb = f"http://{lab.address('lb')}"
        assert await eventually(lambda: _http_ok(f"{lb}/healthz"), timeout=30)
        db_url = f"postgres://postgres@{lab.address('db')}:5432/postgres"
        create_account(db_url, OPERATOR, OPERATOR_PASSWORD, "fleet_operator")
        create_account(db_url, SUPERVISOR, SUPERVISOR_PASSWORD, "supervisor")
        admin_token = json.loads((out / "secrets.json").read_text())["admin_token"]
        _factory_claims(lab, runners, admin_token)
        _start(runners, [(host, "agent") for host in TERMINALS], 180)
        figures["start_s"] = round(time.monotonic() - began, 1)

        apis = {c: f"http://{lab.address(c)}:8000" for c in ("cloud-1", "cloud-2")}
        headers: dict[str, str] = {}

        async def events(api: str) -> dict[str, list[int]] | None:
            """The sequence numbers of the business events stored per terminal, read
            through one API host (or the load balancer)."""
            stored = {}
            async with httpx.AsyncClient(base_url=api, timeout=10, headers=headers) as http:
                for host in TERMINALS:
                    r = await http.get(
                        f"/api/v1/terminals/{_tid(host)}/events", params={"limit": 1000}
                    )
                    if r.status_code != 200:
                        return None
                    stored[host] = [e["seq"] for e in r.json()]
            return stored

        async def more_than(api: str, before: dict[str, list[int]]) -> dict[str, list[int]] | None:
            with contextlib.suppress(httpx.HTTPError):
                now = await events(api)
                if now and all(len(now[h]) > len(before.get(h, [])) + 2 for h in TERMINALS):
                    return now
            return None

        def total(stored: dict[str, list[int]]) -> int:
            return sum(len(seqs) for seqs in stored.values())

        headers["Authorization"] = f"Bearer {await token(lb, OPERATOR, OPERATOR_PASSWORD)}"
        for host in TERMINALS:
            assert await eventually(
                lambda h=host: asyncio.sleep(0, _on_broker(lab, h, "broker-1")), timeout=60
            )
        before = await eventually(lambda: more_than(apis["cloud-2"], {}), timeout=90)

        # 1. The first broker host loses power.
        killed = lab.kill_host("broker-1")
        assert killed >= 1
        t0 = time.monotonic()
        for host in TERMINALS:
            assert await eventually(
                lambda h=host: asyncio.sleep(0, _on_broker(lab, h, "broker-2")), timeout=60
            ), f"{host} did not reach broker-2"
        figures["broker_failover_s"] = round(time.monotonic() - t0, 1)
        after_broker = await eventually(lambda: more_than(apis["cloud-2"], before), timeout=60)
        figures["events_landed_after_broker_kill_s"] = round(time.monotonic() - t0, 1)

        # 2. The cloud host holding the lease loses power, while a fleet page keeps
        # reading the terminals list through the load balancer.
        async def leader() -> str | None:
            for cloud, api in apis.items():
                if await _http_ok(f"{api}/healthz/leader"):
                    return cloud
            return None

        first = await eventually(leader, timeout=30)
        # The leader runs the teller desk on the media host's Janus; HAProxy's desk
        # backend (checked on /healthz/leader) sends a supervisor there.
        assert await eventually(lambda: _desk(lb), timeout=30), f"no desk through lb ({first})"
        other = "cloud-2" if first == "cloud-1" else "cloud-1"
        with _Poller(f"{lb}/api/v1/terminals", headers) as fleet_page:
            await asyncio.sleep(1)
            lab.kill_host(first)
            t1 = time.monotonic()
            assert await eventually(lambda: _http_ok(f"{apis[other]}/healthz/leader"), timeout=60)
            figures["lease_takeover_s"] = round(time.monotonic() - t1, 1)
            assert await eventually(lambda: _desk(lb), timeout=60)  # the desk moved
            figures["desk_answers_through_lb_after_leader_kill_s"] = round(time.monotonic() - t1, 1)
            await asyncio.sleep(0.5)
        # A replica's death costs a GET through the load balancer nothing: HAProxy retries
        # a refused or dropped request on the other replica (``retry-on``, ``redispatch``).
        assert fleet_page.answers and set(fleet_page.answers) == {200}, fleet_page.answers
        figures["lb_terminal_list_reads_during_leader_kill"] = len(fleet_page.answers)
        after_cloud = await eventually(lambda: more_than(lb, after_broker), timeout=60)
        figures["events_landed_after_leader_kill_s"] = round(time.monotonic() - t1, 1)

        # A command queued now, on the surviving cloud host, reaches every terminal over
        # the surviving broker (the new leader's database-queued sender).
        async with httpx.AsyncClient(base_url=lb, timeout=10, headers=headers) as http:
            body = {"name": "ping", "terminals": [_tid(h) for h in TERMINALS], "args": {"k": 1}}
            r = await http.post("/api/v1/fleet/commands", json=body)
            assert r.status_code in (200, 201), r.text
            command_ids = r.json()["commands"]
            t3 = time.monotonic()

            async def finals() -> list[str] | None:
                rows = [(await http.get(f"/api/v1/fleet/commands/{c}")).json() for c in command_ids]
                states = [c["state"] for c in rows]
                return states if all(st not in ("queued", "sent") for st in states) else None

            assert await eventually(finals, timeout=60) == ["succeeded"] * len(TERMINALS)
            figures["command_succeeded_after_s"] = round(time.monotonic() - t3, 1)

        # 3. The database host loses power (PostgreSQL and VictoriaMetrics). The surviving
        # cloud host says it is degraded; the terminals keep their events in their spools.
        marks = {h: _spool(runners[h])[0] for h in TERMINALS}
        t_db_media = time.monotonic()
        lab.kill_host("db")
        t4 = time.monotonic()

        async def degraded() -> dict[str, object] | None:
            got = await _health(apis[other])
            if got is None or got[0] != 503 or got[1].get("status") != "degraded":
                return None
            return got[1]

        health = await eventually(degraded, timeout=60)
        assert str(health["database"]).startswith("error"), health
        figures["healthz_degraded_after_db_kill_s"] = round(time.monotonic() - t4, 1)

        def held_by_all() -> dict[str, list[int]] | None:
            held = {h: _held(runners[h], marks[h]) for h in TERMINALS}
            return held if all(held.values()) else None

        # Until every terminal holds an event made while the database was down.
        held = await eventually(lambda: asyncio.sleep(0, held_by_all()), timeout=60)
        figures["db_down_s"] = round(time.monotonic() - t4, 1)
        figures["events_held_in_spools_during_db_outage"] = sum(map(len, held.values()))
        _postgres_start(lab, base)
        runners["db"].start("cuntong-victoria-metrics")
        t5 = time.monotonic()

        async def healthy() -> bool | None:
            got = await _health(apis[other])
            return (got is not None and got[0] == 200) or None

        assert await eventually(healthy, timeout=60), await _health(apis[other])
        figures["healthz_ok_after_db_restart_s"] = round(time.monotonic() - t5, 1)
        assert await eventually(lambda: _desk(lb), timeout=60)  # the lease is taken again
        figures["desk_answers_after_db_restart_s"] = round(time.monotonic() - t5, 1)

        async def stored_all_held() -> dict[str, list[int]] | None:
            with contextlib.suppress(httpx.HTTPError):
                now = await events(lb)
                if now and all(set(held[h]) <= set(now[h]) for h in TERMINALS):
                    return now
            return None

        after_db = await eventually(stored_all_held, timeout=60)
        figures["held_events_stored_after_db_restart_s"] = round(time.monotonic() - t5, 1)

        # 4. The media host loses power (Janus). The desk's health check (every 5 s) marks
        # its node down on /healthz, which stays 200 (media is reported, not required), and
        # the desk goes on answering; Janus started again from its files is taken back.
        async def media(healthy: bool) -> tuple[int, dict[str, object]] | None:
            got = await _health(apis[other])
            nodes = got[1].get("media_nodes") if got else None
            if not isinstance(nodes, list) or not nodes:
                return None
            return got if all(n["healthy"] is healthy for n in nodes) else None

        # The desk uses the node (its admin API admits the cloud hosts) before the kill.
        assert await eventually(lambda: media(True), timeout=30), await _health(apis[other])
        lab.kill_host("media")
        t6 = time.monotonic()

        status, _ = await eventually(lambda: media(False), timeout=60)
        figures["media_node_down_on_healthz_s"] = round(time.monotonic() - t6, 1)
        figures["healthz_status_with_media_down"] = status
        assert await _desk(lb), "the desk stopped answering with its media host down"
        runners["media"].start("cuntong-janus")
        t7 = time.monotonic()
        assert await eventually(lambda: media(True), timeout=60)
        figures["media_node_back_after_restart_s"] = round(time.monotonic() - t7, 1)
        # What the database and media kills add to the test.
        figures["db_and_media_phases_s"] = round(time.monotonic() - t_db_media, 1)

        # 5. Nothing lost: every message each terminal spooled up to now is confirmed stored
        # (a spool deletes a row only on ingest's confirmation, sent after its commit).
        marks = {h: _spool(runners[h])[0] for h in TERMINALS}

        def confirmed(column: int) -> bool | None:
            for h in TERMINALS:
                low = _spool(runners[h])[column]
                if low is not None and low <= marks[h]:
                    return None
            return True

        t2 = time.monotonic()
        assert await eventually(lambda: asyncio.sleep(0, confirmed(2)), timeout=120)
        figures["events_confirmed_after_s"] = round(time.monotonic() - t2, 1)
        # Telemetry takes longer: see docs/operations.md (the shared subscription keeps
        # queueing a share for the dead host's ingest; the terminals' re-sends bring it in).
        assert await eventually(lambda: asyncio.sleep(0, confirmed(1)), timeout=120), {
            h: _spool(runners[h]) for h in TERMINALS
        }
        figures["all_confirmed_after_s"] = round(time.monotonic() - t2, 1)
        final = await events(lb)
        assert final is not None
        figures["events_stored"] = total(final)
        figures["events_before_kills"] = total(before)
        figures["events_after_broker_kill"] = total(after_broker)
        figures["events_after_leader_kill"] = total(after_cloud)
        figures["events_after_db_restart"] = total(after_db)
        figures["leader_killed"] = first
        figures["total_s"] = round(time.monotonic() - began, 1)
        with capsys.disabled():
            print(f"\nmulti-host figures: {json.dumps(figures)}")
