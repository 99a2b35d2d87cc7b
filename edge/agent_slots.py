"""The agent's own A/B slots: each version in a folder of its own, one symlink says which runs.

A slot (``<state>/ota/slots/agent/<a|b>/``) holds the signed ``manifest.json``, the
``payload`` (the project's wheel, as ``pip wheel`` builds it) and ``site/``, the wheel
unpacked: a ``--target``-style folder that goes first on ``PYTHONPATH``. A release whose
locked dependencies differ from the base install carries their wheels in the package
(``agent-deps/``, ``fleet.agent_release.with_deps``); they are installed with pip from
those wheels only (no index, no network, hashes checked) into the slot's own ``deps/``,
which follows ``site/`` on ``PYTHONPATH``, ahead of the base environment: the slot imports
its own dependency versions, and everything else comes from the base install.

``current`` (a symlink beside the slots) names the slot that runs. It is switched with a
rename of a fresh symlink over it, so a power cut leaves the old or the new one, never none.
The launcher (``edge.launcher``, what systemd or ``cuntong.supervisor`` starts) calls
``prepare`` before every start: it counts trial starts (``edge.ota_slots.boot``: a second
start on trial, or a start past the trial's deadline, goes back to the previous slot),
points ``current`` at the active slot and returns the environment to run it with.

An update's command reply waits for the new version (``Pending``): the old agent saves where
the reply goes, the new one answers once it has connected, reported its version and passed
its self-test; after a rollback the old one answers that the update failed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from common.wire import delta as delta_wire
from common.wire.package import AGENT_DEPS, AGENT_REQUIREMENTS, Manifest, PackageRefused
from edge import ota_slots

COMPONENT = "agent"
#: Set by the launcher for the agent it starts: the slot it runs from.
SLOT_ENV = "CUNTONG_AGENT_SLOT"
#: How long a new agent version has to connect, report and pass its self-test.
TRIAL_S = 120.0
#: Files a payload must hold to be an agent at all.
REQUIRED = ("cuntong/__main__.py", "edge/agent.py", "common/__init__.py")
MAX_UNPACKED = 256 * 1024 * 1024
#: How long pip may take to install a slot's dependency wheels.
DEPS_INSTALL_S = 300.0


def base(state_dir: Path) -> Path:
    return state_dir / "ota" / "slots" / COMPONENT


def current_link(state_dir: Path) -> Path:
    return base(state_dir) / "current"


def site(state_dir: Path, slot: str) -> Path:
    return base(state_dir) / slot / "site"


def check_wheel(payload: Path) -> None:
    """Refuse a payload that is not an agent wheel, or that would unpack outside its slot."""
    try:
        with zipfile.ZipFile(payload) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as err:
        raise PackageRefused("not_a_wheel", f"agent payload is not a wheel: {err}") from err
    names = set()
    total = 0
    for info in infos:
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts:
            raise PackageRefused("unsafe_path", f"agent payload names {info.filename!r}")
        if info.filename.startswith(AGENT_DEPS) and not _dep_file(info.filename):
            raise PackageRefused("unsafe_path", f"agent payload carries {info.filename!r}")
        names.add(info.filename)
        total += info.file_size
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise PackageRefused("not_an_agent", f"agent payload lacks {', '.join(missing)}")
    if total > MAX_UNPACKED:
        raise PackageRefused("too_large", f"agent payload unpacks to {total} bytes")


def _dep_file(name: str) -> bool:
    """Directly in ``agent-deps/``: a wheel, or the requirements naming them."""
    rest = name[len(AGENT_DEPS) :]
    return "/" not in rest and (rest.endswith(".whl") or name == AGENT_REQUIREMENTS)


def deps(state_dir: Path, slot: str) -> Path:
    return base(state_dir) / slot / "deps"


def unpack(payload: Path, slot_dir: Path) -> None:
    """Unpack a checked wheel into ``slot_dir/site`` (replacing what was there) and install
    the dependency wheels it carries into ``slot_dir/deps``."""
    check_wheel(payload)
    target = slot_dir / "site"
    if target.exists():
        shutil.rmtree(target)
    with zipfile.ZipFile(payload) as archive:
        archive.extractall(target)
    install_deps(slot_dir)
    _release(slot_dir, hashlib.sha256(payload.read_bytes()).hexdigest())


def install_deps(slot_dir: Path) -> dict[str, str]:
    """Install the wheels under ``site/agent-deps/`` into ``slot_dir/deps`` with pip: from
    those wheels only (``--no-index``), each checked against the SHA-256 its requirements
    line names (``--require-hashes``), binary only, no resolution beyond the lock
    (``--no-deps``: the builder carried every pin that differs from the base). Then every
    pin must be installed at its version. Returns name -> version installed; refused
    (PackageRefused ``deps_failed``) with pip's own words otherwise."""
    target = slot_dir / "deps"
    if target.exists():
        shutil.rmtree(target)
    requirements = slot_dir / "site" / AGENT_REQUIREMENTS
    if not requirements.exists():
        return {}
    pins = _pins(requirements.read_text())
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--isolated",  # no pip.conf or PIP_* (an index URL) from the terminal
        "--disable-pip-version-check",
        "--no-input",
        "--no-index",
        "--find-links",
        str(requirements.parent),
        "--only-binary=:all:",
        "--no-deps",
        "--require-hashes",
        "--no-cache-dir",
        "--no-warn-script-location",
        "--target",
        str(target),
        "--requirement",
        str(requirements),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=DEPS_INSTALL_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise PackageRefused(
            "deps_failed", f"dependency install took over {err.timeout} s"
        ) from err
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()][-3:]
        raise PackageRefused("deps_failed", "dependency install failed: " + " / ".join(said))
    found = {
        _normalise(d.metadata["Name"]): d.version
        for d in metadata.distributions(path=[str(target)])
    }
    wrong = [f"{n}=={v}" for n, v in pins.items() if found.get(n) != v]
    if wrong:
        raise PackageRefused("deps_failed", f"not installed as locked: {', '.join(wrong)}")
    return found


def running_deps(state_dir: Path, slot: str | None) -> dict[str, str]:
    """The dependency versions the slot this agent runs from carries, as reported in
    ``versions`` (``agent/<project>``): what the fleet sees a release brought along."""
    folder = deps(state_dir, slot) if slot else None
    if folder is None or not folder.is_dir():
        return {}
    return {
        f"{COMPONENT}/{_normalise(d.metadata['Name'])}": d.version
        for d in metadata.distributions(path=[str(folder)])
    }


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        req = line.split()[0] if line.split() else ""
        if "==" in req:
            name, version = req.split("==", 1)
            pins[_normalise(name)] = version
    return pins


def _release(slot_dir: Path, sha256: str) -> None:
    """What a delta must start from: the SHA-256 of the full wheel this slot holds."""
    (slot_dir / "release.json").write_text(json.dumps({"sha256": sha256}))


def release_sha256(slot_dir: Path) -> str | None:
    try:
        return str(json.loads((slot_dir / "release.json").read_text())["sha256"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return None


def apply_delta(payload: Path, base_slot: Path, slot_dir: Path) -> None:
    """Build ``slot_dir/site`` from the installed ``base_slot`` and a delta; refused
    (PackageRefused) unless the base is the delta's and every file matches its hash."""
    d = delta_wire.parse(payload.read_bytes())
    signed = Manifest.parse((slot_dir / "manifest.json").read_bytes())
    if (d.component, d.version) != (signed.component, signed.version):
        raise PackageRefused("delta_mismatch", f"delta is for {d.component} {d.version}")
    if release_sha256(base_slot) != d.base_sha256:
        raise PackageRefused("base_mismatch", f"installed slot is not {d.base_version}")
    target = slot_dir / "site"
    if target.exists():
        shutil.rmtree(target)
    delta_wire.apply(d, base_slot / "site", target)
    install_deps(slot_dir)  # the dependency wheels are files of the delta like any other
    _release(slot_dir, d.sha256)


def point(state_dir: Path, slot: str) -> None:
    """Make ``current`` name ``slot``, atomically (a new symlink renamed over the old)."""
    link = current_link(state_dir)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name("current.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(slot)
    os.replace(tmp, link)


def read(state_dir: Path) -> ota_slots.Slots:
    path = base(state_dir) / "slots.json"
    if not path.exists():
        return ota_slots.Slots()
    return ota_slots.Slots.from_dict(json.loads(path.read_text()))


def save(state_dir: Path, s: ota_slots.Slots) -> None:
    path = base(state_dir) / "slots.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(s.to_dict()))
    os.replace(tmp, path)


def prepare(state_dir: Path, env: dict[str, str], now: float) -> tuple[dict[str, str], str]:
    """Before a start: count the trial start (or roll back), point ``current`` at the slot
    to run, and the environment that runs it. The slot's name is returned too; a slot with
    nothing unpacked (the factory install) runs from the base environment."""
    before = read(state_dir)
    after = ota_slots.boot(before, now)
    if after != before:
        save(state_dir, after)
    slot = after.active
    point(state_dir, slot)
    env = dict(env)
    env[SLOT_ENV] = slot
    code = current_link(state_dir) / "site"
    if code.is_dir():
        # The slot's code, then its own dependency versions, then the base environment.
        first = [str(code)]
        if (current_link(state_dir) / "deps").is_dir():
            first.append(str(current_link(state_dir) / "deps"))
        rest = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join([*first, *([rest] if rest else [])])
    return env, slot


@dataclass(frozen=True)
class Pending:
    """Where the reply to an agent update goes, kept across the restart it needs."""

    version: str
    response_topic: str
    correlation: str  # base64 of the MQTT 5 correlation data
    command_id: str | None = None

    @property
    def correlation_bytes(self) -> bytes:
        return base64.b64decode(self.correlation)


def pending_path(state_dir: Path, component: str = COMPONENT) -> Path:
    """Beside the component's slots (the agent's, or an adapter's: both restart)."""
    return state_dir / "ota" / "slots" / component / "pending.json"


def save_pending(state_dir: Path, p: Pending, component: str = COMPONENT) -> None:
    path = pending_path(state_dir, component)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(p)))
    os.replace(tmp, path)


def read_pending(state_dir: Path, component: str = COMPONENT) -> Pending | None:
    try:
        return Pending(**json.loads(pending_path(state_dir, component).read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def clear_pending(state_dir: Path, component: str = COMPONENT) -> None:
    pending_path(state_dir, component).unlink(missing_ok=True)
