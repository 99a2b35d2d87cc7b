"""A model bundle: one manifest and the ONNX files it names, as one OTA payload.

A bank replaces the terminal's whole model set (detector, landmarks, passive ensemble) by
publishing a bundle as the fleet package ``model.liveness``. The bundle is an uncompressed
POSIX tar with exactly these members, in this order:

    manifest.json          the same format as models/manifest.json (signed entries)
    onnx/<file>            each entry's file, named by the entry's `file` (a thin bundle:
                           only those the agent does not ship)

Nothing else is accepted: no folders, links, devices, files the manifest does not name, and
no path outside ``onnx/``. A *thin* bundle leaves out files the agent ships (`thin`); the
terminal takes them from its own models folder when their SHA-256 matches (`complete`).
`to_bytes` is deterministic (sorted members, zero times and owners), so the same models
always give the same bundle and the same package SHA-256.

What the bundle's bytes prove is checked elsewhere: `verify` checks every entry's Ed25519
signature and every file's SHA-256 (`models.registry.verify`); the terminal's health check
(`edge.vision.health`) loads and runs them. Pure (bytes in, bytes out) but for
`from_folder`, `complete` and `thin`.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from models.errors import BundleError, ManifestError
from models.manifest import Manifest, ModelEntry
from models.registry import VerifiedModel, verify
from models.signing import TrustedKeys

#: The fleet package component a bundle is published as.
COMPONENT = "model.liveness"
MANIFEST = "manifest.json"
ONNX = "onnx/"
MAX_BYTES = 256 * 1024 * 1024  # far above any terminal-sized model set
#: Each model is one entry of the terminal's reported versions, which carry at most 32.
MAX_MODELS = 16


@dataclass(frozen=True)
class Bundle:
    """A manifest and the bytes of each file it names (by bare file name)."""

    manifest: Manifest
    files: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if len(self.manifest.models) > MAX_MODELS:
            raise BundleError(f"bundle has more than {MAX_MODELS} models")
        extra = sorted(set(self.files) - {m.file for m in self.manifest.models})
        if extra:
            raise BundleError(f"bundle files not in its manifest: {extra}")
        try:
            self.manifest.by_role("face_detector")
            self.manifest.by_role("face_landmarks")
        except ManifestError as err:
            raise BundleError(f"bundle manifest: {err}") from err
        if not self.manifest.passive_ensemble:
            raise BundleError("bundle manifest: passive_ensemble names no classifier")
        # Every model a bundle carries must run, so the health check covers all of them.
        unused = [
            m.name
            for m in self.manifest.models
            if m.role == "passive_classifier" and m.name not in self.manifest.passive_ensemble
        ]
        if unused:
            raise BundleError(f"bundle carries models its ensemble does not use: {unused}")

    @property
    def versions(self) -> dict[str, str]:
        """Model name → version, for every model the bundle carries."""
        return {m.name: m.version for m in self.manifest.models}

    @property
    def missing(self) -> list[ModelEntry]:
        """Entries whose file the bundle leaves to the terminal (a thin bundle)."""
        return [m for m in self.manifest.models if m.file not in self.files]

    def verify(self, trusted: TrustedKeys) -> list[VerifiedModel]:
        """Every model, checked against its signed entry; ModelRefused names the first bad one."""
        if self.missing:
            raise BundleError(f"bundle lacks {[m.file for m in self.missing]}: complete it first")
        return [verify(m, self.files[m.file], trusted) for m in self.manifest.models]

    def complete(self, shipped: Path) -> Bundle:
        """Each file the bundle leaves out taken from ``shipped`` (the models folder the agent
        ships), if a file of that name there has the signed SHA-256; else BundleError."""
        files = dict(self.files)
        for m in self.missing:
            path = shipped / m.file
            data = path.read_bytes() if path.is_file() else b""
            if hashlib.sha256(data).hexdigest() != m.sha256:
                raise BundleError(
                    f"model {m.label} ({m.file}) is neither in the bundle nor shipped with "
                    "this agent"
                )
            files[m.file] = data
        return Bundle(self.manifest, files)

    def thin(self, shipped: Path) -> Bundle:
        """Without the files ``shipped`` holds byte for byte: a bank's own classifier alone
        travels (kilobytes, not megabytes, over a village link)."""
        kept = {
            name: data
            for name, data in self.files.items()
            if not ((shipped / name).is_file() and (shipped / name).read_bytes() == data)
        }
        return Bundle(self.manifest, kept)

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            members = [(MANIFEST, self.manifest.to_bytes())]
            members += [(ONNX + name, self.files[name]) for name in sorted(self.files)]
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                tar.addfile(info, io.BytesIO(data))
        return out.getvalue()

    @classmethod
    def parse(cls, data: bytes) -> Bundle:
        """The bundle in ``data``; BundleError (a ValueError) on anything else."""
        if len(data) > MAX_BYTES:
            raise BundleError(f"bundle is {len(data)} bytes, over the {MAX_BYTES} limit")
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
                members = _members(tar)
        except (tarfile.TarError, EOFError) as err:
            raise BundleError(f"not a model bundle (uncompressed tar): {err}") from err
        if MANIFEST not in members:
            raise BundleError(f"bundle has no {MANIFEST}")
        try:
            manifest = Manifest.parse(members.pop(MANIFEST))
        except ManifestError as err:
            raise BundleError(f"bundle {MANIFEST}: {err}") from err
        return cls(manifest, {name[len(ONNX) :]: body for name, body in members.items()})

    @classmethod
    def from_folder(cls, manifest_path: Path) -> Bundle:
        """The manifest at ``manifest_path`` and the files it names from ``onnx/`` beside it."""
        manifest = Manifest.parse(manifest_path.read_bytes())
        folder = manifest_path.parent / "onnx"
        return cls(manifest, {m.file: (folder / m.file).read_bytes() for m in manifest.models})


def _members(tar: tarfile.TarFile) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for info in tar:
        if len(out) > MAX_MODELS:
            raise BundleError(f"bundle has more than {MAX_MODELS} models")
        name = info.name
        if not info.isreg():
            raise BundleError(f"bundle member {name!r} is not a regular file")
        if name != MANIFEST and not _onnx_name(name):
            raise BundleError(f"bundle member {name!r} is neither {MANIFEST} nor onnx/<file>")
        if name in out:
            raise BundleError(f"bundle member {name!r} appears twice")
        f = tar.extractfile(info)
        assert f is not None  # a regular file always has a body
        out[name] = f.read()
    return out


def _onnx_name(name: str) -> bool:
    rest = name[len(ONNX) :]
    return name.startswith(ONNX) and bool(rest) and "/" not in rest and rest not in (".", "..")
