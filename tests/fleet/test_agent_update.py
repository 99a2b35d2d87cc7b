"""Agent self-update on real agent processes: A/B slots, trial, commit, rollback, rollout.

Each terminal is a real ``edge.launcher`` process (it execs ``python -m cuntong agent`` from
the current slot) kept alive by ``cuntong.supervisor``, enrolled with the real cloud over
mTLS. The releases are the project's own wheel built by ``pip wheel`` and stamped with a
version by ``fleet.agent_release``; the rollout engine drives them unchanged.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import AsyncIterator, Iterator
from importlib import metadata
from pathlib import Path

import pytest

from cuntong.servers.mosquitto import Broker
from edge import agent_slots
from fleet.agent_release import stamp, with_deps
from tests.fleet.launched import (
    Terminals,
    online_with,
    project_wheel,
    rollout,
    start_group,
)
from tests.fleet.wheels import tiny_wheel
from tests.helpers import CloudProcess, eventually


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return project_wheel(tmp_path_factory.mktemp("agent-wheel"))


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


async def test_a_new_agent_version_is_installed_tried_and_committed(
    wheel: bytes, cloud_and_broker: CloudProcess, terminals: Terminals
) -> None:
    cloud = cloud_and_broker
    async with cloud.client() as http:
        r = await http.put("/api/v1/fleet/packages/agent/0.2.0", content=stamp(wheel, "0.2.0"))
        assert r.status_code == 201, r.text
        prefix, ids = await start_group(http, terminals, cloud, 2)
        done = await rollout(http, prefix.lower(), "0.2.0", {"canary": 1, "wave_size": 1})
        assert done["phase"] == "succeeded", (done["reason"], done["waves"])
        # The fleet sees the new version from the terminals themselves (their status).
        await eventually(lambda: online_with(http, prefix, "0.2.0", 2), timeout=30)
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
        prefix, _ = await start_group(http, terminals, cloud, 3)
        plan = {"canary": 1, "wave_size": 2, "abort_failure_pct": 50, "min_finished": 1}
        done = await rollout(http, prefix.lower(), "0.3.0", plan)
        assert done["phase"] in ("aborted", "rolled_back"), done
        assert "failures 1/1" in done["reason"], done
        assert done["waves"][0]["states"] == {"failed": 1}
        assert all(set(w["states"]) == {"cancelled"} for w in done["waves"][1:])
        alerts = (await http.get("/api/v1/fleet/alerts")).json()
        assert done["id"] in [a["subject"] for a in alerts if a["kind"] == "rollout_aborted"]
        # Back on the old version by itself, online, and it says why.
        await eventually(lambda: online_with(http, prefix, "0.1.0", 3), timeout=60)
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
        prefix, (tid,) = await start_group(http, terminals, cloud, 1)
        group = prefix.lower()
        assert (await rollout(http, group, "0.2.0", {"canary": 1}))["phase"] == "succeeded"
        await eventually(lambda: online_with(http, prefix, "0.2.0", 1), timeout=30)
        state = terminals.root / tid
        before = agent_slots.read(state)

        # Corrupt the delta on the cloud's disk: the terminal picks it (its slot matches),
        # the digest does not match the signed manifest, and nothing changes.
        stored = tmp_path / "cloud" / "packages" / "agent" / "0.2.1" / "deltas" / "0.2.0"
        good = (stored / "payload").read_bytes()
        (stored / "payload").write_bytes(good[:-10] + bytes(10))
        refused = await rollout(http, group, "0.2.1", {"canary": 1})
        assert refused["phase"] in ("aborted", "rolled_back"), refused
        assert agent_slots.read(state) == before
        assert os.readlink(agent_slots.current_link(state)) == before.active
        assert not (agent_slots.base(state) / f"{before.inactive}.staging").exists()
        await eventually(lambda: online_with(http, prefix, "0.2.0", 1), timeout=30)

        (stored / "payload").write_bytes(good)
        done = await rollout(http, group, "0.2.1", {"canary": 1})
        assert done["phase"] == "succeeded", (done["reason"], done["waves"])
        await eventually(lambda: online_with(http, prefix, "0.2.1", 1), timeout=30)
        events = (await http.get(f"/api/v1/terminals/{tid}/events")).json()
    progress = [e["data"] for e in events if e["type"] == "ota_progress"]
    assert any(p["state"] == "refused" and p["reason"] == "digest_mismatch" for p in progress)
    installed = [p for p in progress if p["state"] == "installed" and p["version"] == "0.2.1"]
    assert [p["delta"] for p in installed] == [True]
    site = agent_slots.site(state, agent_slots.read(state).active)
    assert (site / sim).read_bytes() == patched


def _uses_dep(main: bytes) -> bytes:
    """``cuntong/__main__.py`` of a release that imports its new dependency at start (and
    so cannot start without it) and says which version it got, from where."""
    return (
        b"import sys\n\nimport cuntong_tinydep\n\n"
        b'print(f"agent imports cuntong_tinydep {cuntong_tinydep.__version__} '
        b'from {cuntong_tinydep.__file__}", file=sys.stderr, flush=True)\n' + main
    )


def _base_install() -> str:
    """The terminal's base install as a lock: this environment (the launcher's)."""
    pins = {d.metadata["Name"]: d.version for d in metadata.distributions() if d.metadata["Name"]}
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


async def test_a_release_carries_its_new_dependency_and_a_failed_install_changes_nothing(
    wheel: bytes, cloud_and_broker: CloudProcess, terminals: Terminals, tmp_path: Path
) -> None:
    cloud = cloud_and_broker
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version, tag in [
        ("1.0", "py3-none-any"),
        ("1.1", "py3-none-any"),
        ("2.0", "py3-none-win_amd64"),
    ]:
        code = f'__version__ = "{version}"\n'.encode()
        name, data = tiny_wheel(
            "cuntong-tinydep", version, {"cuntong_tinydep/__init__.py": code}, tag
        )
        (wheels / name).write_bytes(data)
    base = _base_install()
    assert "cuntong-tinydep" not in base and "cuntong_tinydep" not in base
    with zipfile.ZipFile(io.BytesIO(wheel)) as z:
        main = _uses_dep(z.read("cuntong/__main__.py"))

    def release(version: str, dep: str) -> bytes:
        lock = base + f"cuntong-tinydep=={dep}\n"  # the whole lock: one pin is new
        stamped = stamp(wheel, version, {"cuntong/__main__.py": main})
        return with_deps(stamped, lock, base, wheels)

    package = release("0.2.0", "1.0")
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        carried = [n for n in z.namelist() if n.startswith("agent-deps/")]
    # Only what differs from the base install travels.
    assert carried == [
        "agent-deps/cuntong_tinydep-1.0-py3-none-any.whl",
        "agent-deps/requirements.txt",
    ]

    async with cloud.client() as http:
        for version, dep in [("0.2.0", "1.0"), ("0.2.1", "1.1"), ("0.3.0", "2.0")]:
            r = await http.put(
                f"/api/v1/fleet/packages/agent/{version}", content=release(version, dep)
            )
            assert r.status_code == 201, r.text
        made = await http.post("/api/v1/fleet/packages/agent/0.2.1/deltas", json={"from": "0.2.0"})
        assert made.status_code == 201, made.text
        assert made.json()["size"] <= made.json()["full_size"] * 0.2
        prefix, (tid,) = await start_group(http, terminals, cloud, 1)
        group = prefix.lower()
        state = terminals.root / tid
        log = terminals.root / f"{tid}.log"

        done = await rollout(http, group, "0.2.0", {"canary": 1})
        assert done["phase"] == "succeeded", (done["reason"], done["waves"])
        await eventually(lambda: online_with(http, prefix, "0.2.0", 1), timeout=30)
        # The fleet sees the dependency version the running slot carries.
        dep = "agent/cuntong-tinydep"
        await eventually(lambda: online_with(http, prefix, "1.0", 1, component=dep), timeout=30)
        # Imported from the slot's own dependency folder (``current`` names slot b).
        deps = agent_slots.current_link(state) / "deps"
        assert f"cuntong_tinydep 1.0 from {deps}/cuntong_tinydep/__init__.py" in log.read_text()
        assert os.readlink(agent_slots.current_link(state)) == "b"

        # A patch release with a changed dependency: the delta carries the new wheel.
        done = await rollout(http, group, "0.2.1", {"canary": 1})
        assert done["phase"] == "succeeded", (done["reason"], done["waves"])
        await eventually(lambda: online_with(http, prefix, "1.1", 1, component=dep), timeout=30)
        assert f"cuntong_tinydep 1.1 from {deps}/cuntong_tinydep/__init__.py" in log.read_text()
        assert os.readlink(agent_slots.current_link(state)) == "a"
        before = agent_slots.read(state)
        assert (before.active, before.trial) == ("a", False)

        # 0.3.0 locks a dependency whose only wheel is for another platform: pip refuses it
        # on the terminal, and the slots, the record and ``current`` stay as they were.
        refused = await rollout(http, group, "0.3.0", {"canary": 1})
        assert refused["phase"] in ("aborted", "rolled_back"), refused
        assert agent_slots.read(state) == before
        assert os.readlink(agent_slots.current_link(state)) == "a"
        assert not (agent_slots.base(state) / "b.staging").exists()
        assert (agent_slots.deps(state, "b") / "cuntong_tinydep-1.0.dist-info").is_dir()
        await eventually(lambda: online_with(http, prefix, "0.2.1", 1), timeout=30)
        events = (await http.get(f"/api/v1/terminals/{tid}/events")).json()
    progress = [e["data"] for e in events if e["type"] == "ota_progress"]
    installed = {p["version"]: p["delta"] for p in progress if p["state"] == "installed"}
    assert installed == {"0.2.0": False, "0.2.1": True}
    (why,) = [p for p in progress if p["state"] == "refused"]
    assert why["version"] == "0.3.0" and why["reason"] == "deps_failed", why
    assert "cuntong-tinydep==2.0" in why["detail"]
