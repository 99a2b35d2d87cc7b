"""Agent self-update on real agent processes: A/B slots, trial, commit, rollback, rollout.

Each terminal is a real ``edge.launcher`` process (it execs ``python -m cuntong agent`` from
the current slot) kept alive by ``cuntong.supervisor``, enrolled with the real cloud over
mTLS. The releases are the project's own wheel built by ``pip wheel`` and stamped with a
version by ``fleet.agent_release``; the rollout engine drives them unchanged.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cuntong.servers.mosquitto import Broker
from cuntong.supervisor import Child, Restarts, Supervisor
from edge import agent_slots
from fleet.agent_release import stamp
from tests.helpers import CloudProcess, enrolled_link, eventually
from tests.integration.agents import new_id

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The project's wheel, built the way a release is (from a copy of the source)."""
    out = tmp_path_factory.mktemp("agent-wheel")
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

    async def start(self, cloud: CloudProcess, tid: str) -> None:
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


@pytest.fixture
async def terminals(tmp_path: Path) -> AsyncIterator[Terminals]:
    t = Terminals(tmp_path / "terms")
    try:
        yield t
    finally:
        t.stop()


@pytest.fixture
def cloud_and_broker(secured: tuple[Broker, CloudProcess]) -> Iterator[CloudProcess]:
    yield secured[1]


async def _online_with(http: httpx.AsyncClient, prefix: str, version: str, n: int) -> bool:
    r = await http.get(
        "/api/v1/fleet/terminals",
        params={"q": prefix, "status": "online", "version": f"agent={version}"},
    )
    return bool(r.json()["total"] == n)


async def _rollout(
    http: httpx.AsyncClient, group: str, version: str, plan: dict[str, Any]
) -> dict[str, Any]:
    body = {
        "name": f"agent {version}",
        "group": group,
        "action": "ota_install",
        "args": {"component": "agent", "version": version},
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


async def _start_group(
    http: httpx.AsyncClient, terminals: Terminals, cloud: CloudProcess, n: int
) -> tuple[str, list[str]]:
    prefix = new_id("AU")
    ids = [f"{prefix}-{i}" for i in range(n)]
    for tid in ids:
        await terminals.start(cloud, tid)
    await eventually(lambda: _online_with(http, prefix, "0.1.0", n), timeout=60, every=0.5)
    group = {"name": prefix.lower(), "kind": "query", "selector": {"q": prefix}}
    assert (await http.post("/api/v1/fleet/groups", json=group)).status_code == 201
    return prefix, ids


async def test_a_new_agent_version_is_installed_tried_and_committed(
    wheel: bytes, cloud_and_broker: CloudProcess, terminals: Terminals
) -> None:
    cloud = cloud_and_broker
    async with cloud.client() as http:
        r = await http.put("/api/v1/fleet/packages/agent/0.2.0", content=stamp(wheel, "0.2.0"))
        assert r.status_code == 201, r.text
        prefix, ids = await _start_group(http, terminals, cloud, 2)
        done = await _rollout(http, prefix.lower(), "0.2.0", {"canary": 1, "wave_size": 1})
        assert done["phase"] == "succeeded", (done["reason"], done["waves"])
        # The fleet sees the new version from the terminals themselves (their status).
        await eventually(lambda: _online_with(http, prefix, "0.2.0", 2), timeout=30)
        events = (await http.get(f"/api/v1/terminals/{ids[0]}/events")).json()
        states = [e["data"]["state"] for e in events if e["type"] == "ota_progress"]
        assert {"installed", "on_trial", "healthy"} <= set(states), states
    for tid in ids:
        state = terminals.root / tid
        slots = agent_slots.read(state)
        assert (slots.active, slots.trial, slots.versions.get("b")) == ("b", False, "0.2.0")
        assert os.readlink(agent_slots.current_link(state)) == "b"
        code = (agent_slots.site(state, "b") / "common" / "__init__.py").read_text()
        assert '__version__ = "0.2.0"' in code
    assert all(c.restarted >= 1 for c in terminals.sup.children)  # restarted into 0.2.0


async def test_a_version_that_crashes_rolls_back_and_the_rollout_aborts(
    wheel: bytes, cloud_and_broker: CloudProcess, terminals: Terminals
) -> None:
    cloud = cloud_and_broker
    crash = b"raise SystemExit('0.3.0 crashes on start')\n"
    broken = stamp(wheel, "0.3.0", {"cuntong/__main__.py": crash})
    async with cloud.client() as http:
        r = await http.put("/api/v1/fleet/packages/agent/0.3.0", content=broken)
        assert r.status_code == 201, r.text
        prefix, _ = await _start_group(http, terminals, cloud, 3)
        plan = {"canary": 1, "wave_size": 2, "abort_failure_pct": 50, "min_finished": 1}
        done = await _rollout(http, prefix.lower(), "0.3.0", plan)
        assert done["phase"] in ("aborted", "rolled_back"), done
        assert "failures 1/1" in done["reason"], done
        assert done["waves"][0]["states"] == {"failed": 1}
        assert all(set(w["states"]) == {"cancelled"} for w in done["waves"][1:])
        alerts = (await http.get("/api/v1/fleet/alerts")).json()
        assert done["id"] in [a["subject"] for a in alerts if a["kind"] == "rollout_aborted"]
        # Back on the old version by itself, online, and it says why.
        await eventually(lambda: _online_with(http, prefix, "0.1.0", 3), timeout=60)
        targets = (await http.get(f"/api/v1/fleet/rollouts/{done['id']}/targets")).json()
        (failed,) = [t for t in targets if t["state"] == "failed"]
    canary = terminals.root / failed["terminal_id"]
    slots = agent_slots.read(canary)
    assert (slots.active, slots.trial) == ("a", False)
    assert os.readlink(agent_slots.current_link(canary)) == "a"
    assert not agent_slots.pending_path(canary).exists()  # the update was answered
    log = (terminals.root / f"{failed['terminal_id']}.log").read_text()
    assert "0.3.0 crashes on start" in log


async def test_a_patch_release_ships_as_a_delta_and_a_corrupted_one_changes_nothing(
    wheel: bytes, cloud_and_broker: CloudProcess, terminals: Terminals, tmp_path: Path
) -> None:
    cloud = cloud_and_broker
    sim = "edge/simulation.py"
    with zipfile.ZipFile(io.BytesIO(wheel)) as z:
        patched = z.read(sim) + b"\n# 0.2.1: a patch release\n"
    async with cloud.client() as http:
        for version, payload in [
            ("0.2.0", stamp(wheel, "0.2.0")),
            ("0.2.1", stamp(wheel, "0.2.1", {sim: patched})),
        ]:
            r = await http.put(f"/api/v1/fleet/packages/agent/{version}", content=payload)
            assert r.status_code == 201, r.text
        made = await http.post("/api/v1/fleet/packages/agent/0.2.1/deltas", json={"from": "0.2.0"})
        assert made.status_code == 201, made.text
        assert made.json()["size"] <= made.json()["full_size"] * 0.2
        bad = await http.post("/api/v1/fleet/packages/agent/0.2.1/deltas", json={"from": 7})
        assert bad.status_code == 422 and "from" in bad.text
        prefix, (tid,) = await _start_group(http, terminals, cloud, 1)
        group = prefix.lower()
        assert (await _rollout(http, group, "0.2.0", {"canary": 1}))["phase"] == "succeeded"
        await eventually(lambda: _online_with(http, prefix, "0.2.0", 1), timeout=30)
        state = terminals.root / tid
        before = agent_slots.read(state)

        # Corrupt the delta on the cloud's disk: the terminal picks it (its slot matches),
        # the digest does not match the signed manifest, and nothing changes.
        stored = tmp_path / "cloud" / "packages" / "agent" / "0.2.1" / "deltas" / "0.2.0"
        good = (stored / "payload").read_bytes()
        (stored / "payload").write_bytes(good[:-10] + bytes(10))
        refused = await _rollout(http, group, "0.2.1", {"canary": 1})
        assert refused["phase"] in ("aborted", "rolled_back"), refused
        assert agent_slots.read(state) == before
        assert os.readlink(agent_slots.current_link(state)) == before.active
        assert not (agent_slots.base(state) / f"{before.inactive}.staging").exists()
        await eventually(lambda: _online_with(http, prefix, "0.2.0", 1), timeout=30)

        (stored / "payload").write_bytes(good)
        done = await _rollout(http, group, "0.2.1", {"canary": 1})
        assert done["phase"] == "succeeded", (done["reason"], done["waves"])
        await eventually(lambda: _online_with(http, prefix, "0.2.1", 1), timeout=30)
        events = (await http.get(f"/api/v1/terminals/{tid}/events")).json()
    progress = [e["data"] for e in events if e["type"] == "ota_progress"]
    assert any(p["state"] == "refused" and p["reason"] == "digest_mismatch" for p in progress)
    installed = [p for p in progress if p["state"] == "installed" and p["version"] == "0.2.1"]
    assert [p["delta"] for p in installed] == [True]
    site = agent_slots.site(state, agent_slots.read(state).active)
    assert (site / sim).read_bytes() == patched
