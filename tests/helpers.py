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


@dataclass
class CloudProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)


def start_cloud(
    tmp: Path, db_url: str, broker_port: int, tsdb_url: str, **extra: str
) -> CloudProcess:
    port = procs.free_port()
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
                return CloudProcess(url, proc, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    procs.stop(proc)
    raise TimeoutError(f"cloud API not healthy:\n{log.read_text()}")
