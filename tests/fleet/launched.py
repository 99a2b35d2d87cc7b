"""Real terminals for the update tests: ``edge.launcher`` processes under
``cuntong.supervisor``, enrolled with the real cloud over mTLS, and the rollout calls the
tests drive them with (the project's own wheel is built the way a release is)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from cuntong.supervisor import Child, Restarts, Supervisor
from tests.helpers import CloudProcess, enrolled_link, eventually
from tests.integration.agents import new_id

ROOT = Path(__file__).resolve().parents[2]


def project_wheel(out: Path) -> bytes:
    """The project's wheel, built the way a release is (``pip wheel`` on a copy of the
    source)."""
    source = out / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".state", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("cuntong-*.whl")
    return built.read_bytes()


class Terminals:
    """Launcher processes under one supervisor, ticked in the background."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sup = Supervisor()
        self.task: asyncio.Task[None] | None = None

    async def start(
        self, cloud: CloudProcess, tid: str, extra: dict[str, str] | None = None
    ) -> None:
        state = self.root / tid
        await enrolled_link(cloud.url, state, tid)  # factory claim + first boot
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
        env |= {
            "CUNTONG_AGENT_TERMINAL_ID": tid,
            "CUNTONG_AGENT_STATE_DIR": str(state),
            "CUNTONG_AGENT_TELEMETRY_INTERVAL_S": "1",
            "CUNTONG_AGENT_KEEPALIVE_S": "5",
            "CUNTONG_AGENT_SIMULATE": "true",
            "CUNTONG_AGENT_AGENT_TRIAL_S": "60",
            **(extra or {}),
        }
        argv = [sys.executable, "-m", "edge.launcher"]
        # Quick restarts after a crash, so a crash loop ends within the test.
        child = Child(tid, argv, self.root / f"{tid}.log", env, Restarts(base_s=0.5, cap_s=1))
        self.sup.add(child, time.monotonic())
        if self.task is None:
            self.task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            self.sup.tick(time.monotonic(), 0.5)
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.sup.stop(10)


async def online_with(
    http: httpx.AsyncClient, prefix: str, version: str, n: int, component: str = "agent"
) -> bool:
    r = await http.get(
        "/api/v1/fleet/terminals",
        params={"q": prefix, "status": "online", "version": f"{component}={version}"},
    )
    return bool(r.json()["total"] == n)


async def rollout(
    http: httpx.AsyncClient,
    group: str,
    version: str,
    plan: dict[str, Any],
    component: str = "agent",
) -> dict[str, Any]:
    body = {
        "name": f"{component} {version}",
        "group": group,
        "action": "ota_install",
        "args": {"component": component, "version": version},
        "plan": plan,
    }
    created = await http.post("/api/v1/fleet/rollouts", json=body)
    assert created.status_code == 201, created.text
    rid = created.json()["id"]

    async def settled() -> dict[str, Any] | None:
        r = (await http.get(f"/api/v1/fleet/rollouts/{rid}")).json()
        done = ("succeeded", "rolled_back", "aborted", "cancelled")
        return r if r["phase"] in done else None  # type: ignore[no-any-return]

    return await eventually(settled, timeout=120, every=0.5)


async def start_group(
    http: httpx.AsyncClient,
    terminals: Terminals,
    cloud: CloudProcess,
    n: int,
    extra: dict[str, str] | None = None,
) -> tuple[str, list[str]]:
    prefix = new_id("AU")
    ids = [f"{prefix}-{i}" for i in range(n)]
    for tid in ids:
        await terminals.start(cloud, tid, extra)
    await eventually(lambda: online_with(http, prefix, "0.1.0", n), timeout=60, every=0.5)
    group = {"name": prefix.lower(), "kind": "query", "selector": {"q": prefix}}
    assert (await http.post("/api/v1/fleet/groups", json=group)).status_code == 201
    return prefix, ids
