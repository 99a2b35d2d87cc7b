"""Agent and adapter releases: the project's wheel, stamped with the version it reports,
carrying the locked dependencies the terminal's base install lacks; and adapter packages.

A release is the wheel ``pip wheel`` builds from the source tree; ``stamp`` writes the
release version into ``common/__init__.py`` (what the agent reports in ``versions``) and
may replace other files (a patch release). The result is uploaded as the ``agent``
package (``PUT /api/v1/fleet/packages/agent/<version>``) and rolled out like any other.
The wheel's RECORD is left as built: terminals check the signed manifest's SHA-256 of the
whole wheel, not RECORD. ``with_deps`` adds, under ``agent-deps/``, the wheels of the
pins of a lock that differ from the base install's lock, and the hash-pinned requirements
the terminal installs them by (``edge.agent_slots.install_deps``). ``adapter_package``
builds an ``adapter.<kind>`` package (``edge.adapter_slots``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from common.wire.package import ADAPTER_INDEX, AGENT_DEPS, AGENT_REQUIREMENTS

VERSION_FILE = "common/__init__.py"


def stamp(wheel: bytes, version: str, replace: dict[str, bytes] | None = None) -> bytes:
    """A copy of ``wheel`` that reports ``version``, with ``replace``'s files swapped in."""
    replace = dict(replace or {})
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(wheel)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = replace.pop(info.filename, None)
            if data is None:
                data = src.read(info)
            if info.filename == VERSION_FILE:
                data, n = re.subn(
                    rb'__version__ = "[^"]*"', f'__version__ = "{version}"'.encode(), data
                )
                if n != 1:
                    raise ValueError(f"{VERSION_FILE} has no __version__ to stamp")
            dst.writestr(info, data)
        for name, data in replace.items():
            dst.writestr(name, data)
    return out.getvalue()


# --- locked dependencies carried in the package -------------------------------------------

#: The folder of an agent package that carries dependency wheels, and what the terminal
#: installs from it: ``name==version --hash=sha256:...`` per dependency.
DEPS = AGENT_DEPS
REQUIREMENTS = AGENT_REQUIREMENTS

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)$")


@dataclass(frozen=True)
class Pin:
    """One locked dependency: normalised name, exact version, the hashes the lock allows."""

    name: str
    version: str
    hashes: tuple[str, ...] = ()


def normalise(name: str) -> str:
    """PEP 503: ``Foo_Bar.baz`` and ``foo-bar-baz`` name the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_lock(text: str) -> dict[str, Pin]:
    """A ``requirements.txt``-style lock (``pip freeze``, ``pip-compile --generate-hashes``):
    one ``name==version`` per requirement, optional ``--hash=sha256:<hex>`` options, ``\\``
    continuations and ``#`` comments. Anything else (ranges, URLs, editable installs) is a
    ValueError naming the line: a lock pins exact versions."""
    pins: dict[str, Pin] = {}
    joined = re.sub(r"\\\n", " ", text)
    for number, raw in enumerate(joined.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        req, options = words[0], words[1:]
        hashes = []
        for option in options:
            if not option.startswith("--hash=sha256:"):
                raise ValueError(f"lock line {number}: unsupported option {option!r}")
            hashes.append(option.removeprefix("--hash=sha256:"))
        req = req.split(";", 1)[0]  # environment markers: the terminal's platform is one
        m = _PIN.match(req)
        if m is None:
            raise ValueError(f"lock line {number}: {req!r} is not name==version")
        name = normalise(m.group(1))
        if name in pins:
            raise ValueError(f"lock line {number}: {m.group(1)} is pinned twice")
        pins[name] = Pin(name, m.group(2), tuple(hashes))
    return pins


def carried(lock: dict[str, Pin], base: dict[str, Pin], own: str = "cuntong") -> list[Pin]:
    """The locked dependencies the terminal's base install lacks or has at another version
    (the project itself is the package's own wheel, never a dependency)."""
    return [
        pin
        for name, pin in sorted(lock.items())
        if name != normalise(own) and (name not in base or base[name].version != pin.version)
    ]


def _wheel_name(filename: str) -> tuple[str, str] | None:
    """(normalised project, version) of a wheel file name, or None if it is not one."""
    parts = filename.removesuffix(".whl").split("-")
    if not filename.endswith(".whl") or len(parts) not in (5, 6):
        return None
    return normalise(parts[0]), parts[1]


def with_deps(package: bytes, lock_text: str, base_text: str, wheels: Path) -> bytes:
    """``package`` (a stamped agent wheel) carrying, under ``agent-deps/``, the wheels of
    every locked dependency the base install lacks or has at another version, taken from
    the folder ``wheels`` (as ``pip download`` or ``pip wheel`` fill it), and the
    requirements the terminal installs them by (each with its wheel's SHA-256, so pip
    checks them on the terminal). A pin without a wheel, or whose wheel does not match the
    lock's hashes, is a ValueError naming it."""
    needed = carried(parse_lock(lock_text), parse_lock(base_text))
    available: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(wheels.glob("*.whl")):
        key = _wheel_name(path.name)
        if key is not None:
            available.setdefault(key, []).append(path)
    files: dict[str, bytes] = {}
    lines = []
    for pin in needed:
        chosen = []
        for path in available.get((pin.name, pin.version), []):
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if pin.hashes and digest not in pin.hashes:
                continue
            files[DEPS + path.name] = data
            chosen.append(digest)
        if not chosen:
            raise ValueError(f"no wheel for {pin.name}=={pin.version} in {wheels}")
        lines.append(f"{pin.name}=={pin.version} " + " ".join(f"--hash=sha256:{h}" for h in chosen))
    if not files:
        return package
    files[REQUIREMENTS] = ("\n".join(lines) + "\n").encode()
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        clash = [n for n in z.namelist() if n.startswith(DEPS)]
    if clash:
        raise ValueError(f"package already carries {clash[0]}")
    return _add(package, files)


def _add(package: bytes, files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(package)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        for name, data in sorted(files.items()):
            # Wheels are compressed already: stored, so a delta's changed wheel is the
            # wheel's own size.
            dst.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


# --- adapter packages -----------------------------------------------------------------------


def adapter_package(kind: str, module: str, files: dict[str, bytes]) -> bytes:
    """An ``adapter.<kind>`` package: ``adapter.json`` naming the kind and the module, and the
    module's files (paths under ``<module>/``, or ``<module>.py``). The module's
    ``build(config)`` returns the driver for one configured device of that kind
    (``edge.adapter_slots`` loads it on the terminal)."""
    stray = [n for n in files if n.split("/", 1)[0] not in (module, f"{module}.py")]
    if stray:
        raise ValueError(f"{stray[0]} is outside module {module}")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(ADAPTER_INDEX, json.dumps({"kind": kind, "module": module}, sort_keys=True))
        for name, data in sorted(files.items()):
            z.writestr(name, data)
    return out.getvalue()
