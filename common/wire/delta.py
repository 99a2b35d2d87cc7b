"""Delta packages: a patch release as only the files that changed against a base release. Pure.

A delta is a zip: ``delta.json`` (format, component, the base release's version and wheel
SHA-256, the target's version, wheel SHA-256 and size, and the SHA-256 of **every** file of
the target) and, under ``files/``, the files that are new or changed. The cloud builds it
from two published wheels (``build``); a terminal whose installed slot is the base applies
it to a copy of that slot (``apply``), and the result must hold exactly the listed files
with the listed hashes — a corrupted or mismatched delta is refused and the copy thrown away.
The delta itself travels under a signed manifest like any package, so ``delta.json`` (and
with it every file hash) is covered by the cloud's signature.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from common.wire.package import PackageRefused

FORMAT = "cuntong-delta-v1"
INDEX = "delta.json"
PREFIX = "files/"


@dataclass(frozen=True)
class Delta:
    component: str
    base_version: str
    base_sha256: str
    version: str
    sha256: str
    size: int
    files: dict[str, str]  # every file of the target -> its SHA-256
    changed: dict[str, bytes]  # the new or changed ones -> their content


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files(wheel: bytes) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(wheel)) as z:
            return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
    except zipfile.BadZipFile as err:
        raise PackageRefused("not_a_wheel", str(err)) from err


def build(component: str, base_version: str, base: bytes, version: str, target: bytes) -> bytes:
    """The delta that turns ``base`` (a wheel, unpacked) into ``target`` (unpacked)."""
    old, new = _files(base), _files(target)
    index = {
        "format": FORMAT,
        "component": component,
        "base": {"version": base_version, "sha256": _sha(base)},
        "target": {"version": version, "sha256": _sha(target), "size": len(target)},
        "files": {name: _sha(data) for name, data in sorted(new.items())},
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(INDEX, json.dumps(index, sort_keys=True))
        for name, data in sorted(new.items()):
            if old.get(name) != data:
                z.writestr(PREFIX + name, data)
    return out.getvalue()


def _safe(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts:
        raise PackageRefused("unsafe_path", f"delta names {name!r}")
    return name


def parse(raw: bytes) -> Delta:
    """A delta's index and changed files; PackageRefused on anything malformed."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            index = json.loads(z.read(INDEX))
            if index.get("format") != FORMAT:
                raise PackageRefused("not_a_delta", f"format {index.get('format')!r}")
            changed = {
                _safe(i.filename[len(PREFIX) :]): z.read(i)
                for i in z.infolist()
                if i.filename.startswith(PREFIX)
            }
        files = {_safe(str(k)): str(v) for k, v in dict(index["files"]).items()}
        return Delta(
            str(index["component"]),
            str(index["base"]["version"]),
            str(index["base"]["sha256"]),
            str(index["target"]["version"]),
            str(index["target"]["sha256"]),
            int(index["target"]["size"]),
            files,
            changed,
        )
    except PackageRefused:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError) as err:
        raise PackageRefused("not_a_delta", f"malformed delta: {err}") from err


def apply(delta: Delta, base_dir: Path, out_dir: Path) -> None:
    """Write the target's files into ``out_dir`` (which must not exist) from ``base_dir``
    (the base release unpacked) and the delta; every file is checked against its hash.
    On a refusal ``out_dir`` may hold a partial tree: the caller removes it."""
    for name in delta.changed:
        if name not in delta.files:
            raise PackageRefused("delta_mismatch", f"{name} is not a file of the target")
    out_dir.mkdir(parents=True)
    for name, digest in delta.files.items():
        if name in delta.changed:
            data = delta.changed[name]
        else:
            try:
                data = (base_dir / name).read_bytes()
            except OSError as err:
                raise PackageRefused("delta_mismatch", f"base lacks {name}") from err
        if _sha(data) != digest:
            raise PackageRefused("delta_mismatch", f"{name} does not match its hash")
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
