"""Load model bytes only after their SHA-256 and signature check out.

`load_verified(manifest_path, name)` is the one door through which any ONNX file reaches
onnxruntime on the terminal: the manifest entry must be signed by a trusted key, and the file
on disk must hash to the signed SHA-256. Anything else raises `ModelRefused` naming the model,
the file and the reason, so a corrupted download or an unsigned bank model never runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from models.errors import ModelRefused
from models.manifest import Manifest, ModelEntry
from models.signing import TrustedKeys

DEFAULT_MANIFEST = Path(__file__).parent / "manifest.json"
#: The face-match models (docs/vision.md): same format and trust rules, separate from the
#: liveness set so a liveness bundle (`model.liveness`) does not have to carry them.
FACE_MATCH_MANIFEST = Path(__file__).parent / "face_match.json"


@dataclass(frozen=True)
class VerifiedModel:
    """Model bytes that passed the checks, with the entry that describes them."""

    entry: ModelEntry
    data: bytes


def read_manifest(path: Path = DEFAULT_MANIFEST) -> Manifest:
    return Manifest.parse(path.read_bytes())


def verify(entry: ModelEntry, data: bytes, trusted: TrustedKeys) -> VerifiedModel:
    """Check `data` against the signed `entry`; raise ModelRefused with the reason."""
    problem = trusted.verify(entry)
    if problem is not None:
        raise ModelRefused(f"model {entry.label} ({entry.file}) refused: {problem}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256:
        raise ModelRefused(
            f"model {entry.label} ({entry.file}) refused: SHA-256 {digest} does not match "
            f"the signed manifest value {entry.sha256} (file corrupted or replaced)"
        )
    return VerifiedModel(entry, data)


def model_path(entry: ModelEntry, manifest_path: Path = DEFAULT_MANIFEST) -> Path:
    """Where `entry`'s file is: models/onnx/ beside the manifest, or inside its package."""
    if entry.package is None:
        return manifest_path.parent / "onnx" / entry.file
    import_name, *folders = entry.package.split("/")
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelRefused(f"model {entry.label}: package {import_name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)), *folders, entry.file)


def load_verified(
    name: str,
    manifest_path: Path = DEFAULT_MANIFEST,
    trusted: TrustedKeys | None = None,
) -> VerifiedModel:
    """Read model `name` from the manifest's folder and verify it."""
    manifest = read_manifest(manifest_path)
    entry = manifest.get(name)
    path = model_path(entry, manifest_path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelRefused(f"model {entry.label}: cannot read {path}: {err}") from err
    return verify(entry, data, trusted or TrustedKeys.from_dir())
