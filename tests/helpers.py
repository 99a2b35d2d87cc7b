"""Small test helpers: wait for a condition, run the cloud API as a real child process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from cuntong import procs

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


def create_account(db_url: str, account: str, password: str, *roles: str) -> None:
    """Through the real `cuntong accounts create`, as an administrator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env["CUNTONG_ACCOUNT_PASSWORD"] = password
    argv = [sys.executable, "-m", "cuntong", "accounts", "--db-url", db_url, "create", account]
    for role in roles:
        argv += ["--role", role]
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=60)


def start_cloud(
    tmp: Path,
    db_url: str,
    broker_port: int,
    tsdb_url: str,
    create_operator: bool = True,
    **extra: str,
) -> CloudProcess:
    port = procs.free_port()
    if create_operator:
        create_account(db_url, OPERATOR, OPERATOR_PASSWORD, "fleet_operator")
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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cloud API exited:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
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
