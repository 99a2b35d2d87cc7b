"""Small test helpers: wait for a condition, run the cloud API as a real child process."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx

from common import procs
from cuntong.servers.mosquitto import Broker
from cuntong.servers.postgres import Postgres
from edge.identity import SecureLink, establish
from provisioning import wiring
from provisioning.protocol import FactoryClaim, Region

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    timeout: float = 15.0,  # noqa: ASYNC109 - a polling deadline, not a cancellation scope
    every: float = 0.1,
) -> T:
    """Poll until ``probe`` returns something truthy; fail with the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met in {timeout}s; last value: {last!r}")


OPERATOR = "ops"
OPERATOR_PASSWORD = "fleet-operator-password-for-tests"


@dataclass
class CloudProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    token: str = ""

    def client(self) -> httpx.AsyncClient:
        """An HTTP client logged in as a fleet operator (the terminals API needs a role)."""
        return httpx.AsyncClient(
            base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {self.token}"}
        )


async def fresh_database(pg: Postgres, prefix: str = "t") -> str:
    """A new, empty database on the test cluster; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(host=pg.host, port=pg.port, user=pg.user, database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"postgres://{pg.user}@{pg.host}:{pg.port}/{name}"


def create_account(db_url: str, account: str, password: str, *roles: str) -> None:
    """Through the real `cuntong accounts create`, as an administrator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env["CUNTONG_ACCOUNT_PASSWORD"] = password
    argv = [sys.executable, "-m", "cuntong", "accounts", "--db-url", db_url, "create", account]
    for role in roles:
        argv += ["--role", role]
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)


#: A database the real ``cuntong accounts create`` made once per test process (the schema
#: migrated, the operator account in it), copied for each new SQLite cloud: the command
#: takes about a second (a Python start, every migration, an Argon2 hash) and a full run
#: starts well over a hundred clouds.
_operator_db: Path | None = None


def _with_operator(db_url: str) -> None:
    """``db_url``'s database with the operator account, as ``create_account`` makes it:
    a copy of the template for a new SQLite file, the command itself otherwise."""
    global _operator_db
    path = Path(db_url.removeprefix("sqlite://")) if db_url.startswith("sqlite://") else None
    if path is None or path.exists() or "?" in db_url or not path.parent.is_dir():
        create_account(db_url, OPERATOR, OPERATOR_PASSWORD, "fleet_operator")
        return
    if _operator_db is None:
        folder = tempfile.mkdtemp(prefix="cuntong-operator-db-")
        atexit.register(shutil.rmtree, folder, True)
        template = Path(folder) / "cloud.sqlite3"
        create_account(f"sqlite://{template}", OPERATOR, OPERATOR_PASSWORD, "fleet_operator")
        leftovers = [p for p in template.parent.iterdir() if p != template]
        assert not leftovers, f"the database was not closed cleanly: {leftovers}"
        _operator_db = template
    shutil.copyfile(_operator_db, path)


def start_cloud(
    tmp: Path,
    db_url: str,
    broker_port: int,
    tsdb_url: str,
    create_operator: bool = True,
    port: int | None = None,
    *,
    ready_s: float = 30.0,
    **extra: str,
) -> CloudProcess:
    """Start ``cuntong api``; returns once ``/healthz`` says healthy (ingest subscribed) and
    the operator can log in, or raises after ``ready_s``."""
    port = port or procs.free_port()
    if create_operator:
        _with_operator(db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env |= {
        "CUNTONG_CLOUD_DB_URL": db_url,
        "CUNTONG_CLOUD_BROKER_PORT": str(broker_port),
        "CUNTONG_CLOUD_TSDB_URL": tsdb_url,
        "CUNTONG_CLOUD_API_PORT": str(port),
        "CUNTONG_CLOUD_INGEST_FLUSH_MS": "100",
        "CUNTONG_CLOUD_STATE_FLUSH_MS": "200",
        **extra,
    }
    log = tmp / f"api-{port}.log"
    proc = procs.start([sys.executable, "-m", "cuntong", "api"], log, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cloud API exited:\n{log.read_text()}")
        try:
            health = httpx.get(f"{url}/healthz", timeout=1)
            # "ok", not "reduced" (200 too): subscribed on every broker it was given.
            if health.status_code == 200 and health.json().get("ingest", "ok") == "ok":
                login = httpx.post(
                    f"{url}/api/v1/auth/login",
                    json={"username": OPERATOR, "password": OPERATOR_PASSWORD},
                    timeout=10,
                )
                login.raise_for_status()
                return CloudProcess(url, proc, log, login.json()["token"])
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    procs.stop(proc)
    raise TimeoutError(f"cloud API not healthy:\n{log.read_text()}")


#: The factory token the secured test clouds accept on the provisioning routes.
FACTORY_TOKEN = "operator-token-for-tests-0123456789"


@contextlib.contextmanager
def secured_cloud(
    tmp: Path,
    tsdb_url: str,
    services: dict[str, str],
    *,
    refusal_log: bool = False,
    **extra: str,
) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    """The secured default on free ports: an mTLS-only broker whose ACL admits
    ``services``, and the cloud API with its CA and keys under ``tmp/cloud`` (``extra``:
    more ``CUNTONG_CLOUD_*`` environment). ``refusal_log``: the broker logs its refusals
    to a file and the cloud's fleet follows it (``fleet.brokerwatch``)."""
    pki = tmp / "cloud"
    cfg, files = wiring.secure_broker(
        pki, procs.free_port(), dt.datetime.now(dt.UTC), services=services,
        refusal_log=refusal_log,
    )  # fmt: skip
    if refusal_log:
        extra["CUNTONG_FLEET_BROKER_LOG_FILES"] = json.dumps([str(files.logfile)])
    broker = Broker(cfg, tmp / "mosquitto").start()
    try:
        cloud = start_cloud(
            tmp,
            f"sqlite://{tmp / 'cloud.sqlite3'}",
            broker.cfg.port,
            tsdb_url,
            CUNTONG_CLOUD_STATE_DIR=str(pki),
            CUNTONG_CLOUD_ADMIN_TOKEN=FACTORY_TOKEN,
            **extra,
        )
        try:
            yield pki, broker, cloud
        finally:
            procs.stop(cloud.proc)
    finally:
        broker.stop()


async def enrolled_link(
    cloud_url: str, state_dir: Path, tid: str, enrol_url: str | None = None
) -> SecureLink:
    """Play the factory and the first boot: a one-use claim for ``tid`` written into
    ``state_dir``, then enrolment; the terminal's mTLS link to the broker. ``enrol_url``:
    the terminals' HTTPS listener, where the cloud has one (enrolment is served only there)."""
    async with httpx.AsyncClient(base_url=enrol_url or cloud_url, timeout=10, verify=False) as e:
        # Read before trusting, as the factory does (the claim then pins this root).
        ca = (await e.get("/api/v1/enrol/ca")).text
    async with httpx.AsyncClient(base_url=cloud_url, timeout=10) as http:
        claim = await http.post(
            "/api/v1/provisioning/claims",
            json={"uses": 1, "days": 1},
            headers={"Authorization": f"Bearer {FACTORY_TOKEN}"},
        )
        assert claim.status_code == 201, claim.text
    _write_claim(
        state_dir,
        FactoryClaim(
            enrol_url=enrol_url or cloud_url,
            ca_pem=ca,
            claim_token=claim.json()["token"],
            terminal_id=tid,
            hardware_model="ZN-E100",
            region=Region(province="陕西省", city="宝鸡市", county="陈仓区", village="东风村"),
        ),
    )
    link = await establish(state_dir, None, dt.datetime.now(dt.UTC))
    assert link is not None
    return link


def _write_claim(state_dir: Path, claim: FactoryClaim) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "claim.json").write_text(claim.model_dump_json())


def service_prefix(prefix: Path, interpreter: str | None = None) -> Path:
    """An installation for services run as other users, as a deployment has one: a venv of
    Debian's python3 at ``prefix`` (any user may execute it; the test's own interpreter may
    be a pyenv one under /root, mode 0700, as on CI) that loads the test venv's packages
    (its site folder, ``.pth`` files and all), with a ``bin/cuntong`` script whose
    interpreter is ``interpreter`` (the path the services will see; default the venv's)."""
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(prefix)],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    (site,) = prefix.glob("lib/python3*/site-packages")
    ours = sysconfig.get_path("purelib")
    (site / "cuntong-test-venv.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    script = prefix / "bin" / "cuntong"
    shebang = interpreter or prefix / "bin" / "python"
    script.write_text(
        f"#!{shebang}\nimport sys\nfrom cuntong.cli import main\n\n"
        "if __name__ == '__main__':  # a forkserver child imports this module again\n"
        "    sys.exit(main())\n"
    )
    script.chmod(0o755)
    return prefix
