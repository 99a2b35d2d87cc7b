"""Peripheral adapter packages: drivers installed into A/B slots and loaded by the agent.

An ``adapter.<kind>`` package (``fleet.agent_release.adapter_package``) is a zip holding
``adapter.json`` (``{"kind": <kind>, "module": <name>}``) and that module: a folder
``<name>/`` with ``__init__.py`` or a file ``<name>.py``. Its ``build(config)`` returns the
adapter (``firmware_adapters.base.Adapter``) for one configured peripheral of that kind, from
the same ``firmware_adapters.registry.PeripheralConfig`` the built-in drivers take.

It is installed like the agent (``edge.ota.Kind`` with ``unpack``): checked, unpacked into
the inactive slot's ``site/``, switched on trial with a deadline, and the agent restarts.
At start the agent first counts trial starts (``prepare``: a second start on trial without
a commit, or a start past the deadline, goes back to the previous slot), then ``load``s the
active slot of every ``adapter.*`` component and builds its peripherals of that kind with
the slot's ``build``; an adapter whose module fails to import while on trial is rolled
back at once and the previous slot (or the built-in driver) loads instead. The loaded
version goes into ``versions`` (``adapter.<kind>``). The trial itself (connected, then the
kind's self-test, before the deadline; commit or roll back and restart) runs in the agent.

A slot's module is imported under a private name (``_cuntong_adapter_<kind>_<slot>``),
never put on ``sys.path``: it cannot shadow any other module.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from common.wire.package import ADAPTER_INDEX, PackageRefused
from edge import ota_slots
from edge.ota import read_slots, save_slots, slot_dir
from firmware_adapters.base import Adapter
from firmware_adapters.registry import PeripheralConfig

log = logging.getLogger("cuntong.adapters")

PREFIX = "adapter."
MAX_UNPACKED = 64 * 1024 * 1024
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

Builder = Callable[[PeripheralConfig], Adapter]


def component(kind: str) -> str:
    return PREFIX + kind


@dataclass(frozen=True)
class Index:
    kind: str
    module: str


def check(payload: Path, kind: str) -> Index:
    """Refuse a payload that is not an adapter package for ``kind`` or would unpack outside
    its slot; its index otherwise."""
    try:
        with zipfile.ZipFile(payload) as archive:
            infos = archive.infolist()
            raw = archive.read(ADAPTER_INDEX) if ADAPTER_INDEX in archive.namelist() else None
    except (zipfile.BadZipFile, OSError) as err:
        raise PackageRefused("not_an_adapter", f"adapter payload is not a zip: {err}") from err
    if raw is None:
        raise PackageRefused("not_an_adapter", f"adapter payload lacks {ADAPTER_INDEX}")
    try:
        index = json.loads(raw)
        found = Index(str(index["kind"]), str(index["module"]))
    except (ValueError, KeyError, TypeError) as err:
        raise PackageRefused("not_an_adapter", f"{ADAPTER_INDEX} is malformed: {err}") from err
    if found.kind != kind:
        raise PackageRefused("wrong_kind", f"package is for {found.kind!r}, not {kind!r}")
    if not _MODULE.match(found.module):
        raise PackageRefused("not_an_adapter", f"module {found.module!r} is not a module name")
    names = set()
    total = 0
    for info in infos:
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts:
            raise PackageRefused("unsafe_path", f"adapter payload names {info.filename!r}")
        if path.parts[0] not in (ADAPTER_INDEX, found.module, f"{found.module}.py"):
            raise PackageRefused("unsafe_path", f"{info.filename!r} is outside its module")
        names.add(info.filename)
        total += info.file_size
    if f"{found.module}/__init__.py" not in names and f"{found.module}.py" not in names:
        raise PackageRefused("not_an_adapter", f"adapter payload lacks module {found.module}")
    if total > MAX_UNPACKED:
        raise PackageRefused("too_large", f"adapter payload unpacks to {total} bytes")
    return found


def unpacker(kind: str) -> Callable[[Path, Path], None]:
    """``edge.ota.Kind.unpack`` for ``adapter.<kind>``: check, then unpack into ``site/``."""

    def unpack(payload: Path, slot: Path) -> None:
        check(payload, kind)
        target = slot / "site"
        if target.exists():
            shutil.rmtree(target)
        with zipfile.ZipFile(payload) as archive:
            archive.extractall(target)

    return unpack


def components(state_dir: Path) -> list[str]:
    """The adapter components with a slot record on this terminal."""
    root = state_dir / "ota" / "slots"
    return sorted(p.parent.name for p in root.glob(f"{PREFIX}*/slots.json"))


def prepare(state_dir: Path, now: float) -> list[tuple[str, str]]:
    """Count a start for every adapter on trial; (component, version) of those a second
    start or a passed deadline rolled back."""
    rolled = []
    for comp in components(state_dir):
        before = read_slots(state_dir, comp)
        after = ota_slots.boot(before, now)
        if after != before:
            save_slots(state_dir, comp, after)
        if before.trial and not after.trial:
            rolled.append((comp, before.versions.get(before.active, "")))
    return rolled


@dataclass
class Loaded:
    """What ``load`` found: builders by kind, versions by component, and the adapters rolled
    back because their module would not load (component, version, why)."""

    builders: dict[str, Builder] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    failed: list[tuple[str, str, str]] = field(default_factory=list)


def _import(state_dir: Path, comp: str, slot: str) -> Builder | None:
    """The ``build`` of the module in ``comp``'s slot, or None if the slot holds nothing."""
    site = slot_dir(state_dir, comp, slot) / "site"
    index_path = site / ADAPTER_INDEX
    if not index_path.exists():
        return None
    index = json.loads(index_path.read_text())
    module = str(index["module"])
    name = f"_cuntong_adapter_{comp.removeprefix(PREFIX)}_{slot}"
    package = site / module
    if (package / "__init__.py").exists():
        spec = importlib.util.spec_from_file_location(
            name, package / "__init__.py", submodule_search_locations=[str(package)]
        )
    else:
        spec = importlib.util.spec_from_file_location(name, site / f"{module}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {module} from {site}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        del sys.modules[name]
        raise
    build: Any = getattr(loaded, "build", None)
    if not callable(build):
        raise ImportError(f"{module} has no build(config)")
    return build  # type: ignore[no-any-return]


def load(state_dir: Path, kinds: Iterable[str] | None = None) -> Loaded:
    """The adapter builders of the active slots (of ``kinds``, or every adapter with a
    slot). A module that fails to load on trial is rolled back and the previous slot's
    tried; one that fails outside a trial leaves the built-in driver."""
    out = Loaded()
    wanted = None if kinds is None else {component(k) for k in kinds}
    for comp in components(state_dir):
        if wanted is not None and comp not in wanted:
            continue
        for _ in ota_slots.SLOTS:  # the active slot, then (after a rollback) the previous
            s = read_slots(state_dir, comp)
            version = s.versions.get(s.active, "")
            try:
                build = _import(state_dir, comp, s.active)
            except Exception as err:  # any fault of the package's own code
                why = f"{type(err).__name__}: {err}"
                log.error("adapter %s %s does not load: %s", comp, version, why)
                if not s.trial:
                    break  # nothing to go back to: the built-in driver
                save_slots(state_dir, comp, ota_slots.rollback(s))
                out.failed.append((comp, version, why))
                continue
            if build is not None:
                out.builders[comp.removeprefix(PREFIX)] = build
                out.versions[comp] = version
            break
    return out
