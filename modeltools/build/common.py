"""Shared steps of every model build: write the .onnx, update and sign its manifest entry."""

from __future__ import annotations

import hashlib
from pathlib import Path

from models.manifest import Manifest, ModelEntry
from models.registry import DEFAULT_MANIFEST
from models.signing import load_private_key, sign

ONNX_DIR = DEFAULT_MANIFEST.parent / "onnx"


def publish(
    entry: ModelEntry,
    onnx_bytes: bytes,
    key_path: Path | None,
    manifest_path: Path = DEFAULT_MANIFEST,
    join_ensemble: bool = False,
) -> ModelEntry:
    """Write the model file, set its SHA-256, sign if a key is given, and save the manifest.

    `join_ensemble` adds a passive classifier to the averaged ensemble.
    Without a key an unchanged entry keeps its old signature (a reproducible rebuild needs no
    re-signing); a changed entry is left unsigned, which the terminal refuses until signed.
    """
    path = manifest_path.parent / "onnx" / entry.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_bytes)
    fresh = ModelEntry(**{**entry.__dict__, "sha256": hashlib.sha256(onnx_bytes).hexdigest()})
    manifest = (
        Manifest.parse(manifest_path.read_bytes()) if manifest_path.exists() else Manifest(())
    )
    old = next((m for m in manifest.models if m.name == entry.name), None)
    if key_path is not None:
        fresh = sign(fresh, load_private_key(key_path))
    elif old is not None and old.signed_bytes() == fresh.signed_bytes():
        fresh = old
    manifest = manifest.replace(fresh)
    if join_ensemble and fresh.name not in manifest.passive_ensemble:
        manifest = Manifest(manifest.models, (*manifest.passive_ensemble, fresh.name))
    manifest_path.write_bytes(manifest.to_bytes())
    return fresh


def check_reproduced(name: str, onnx_bytes: bytes, manifest_path: Path = DEFAULT_MANIFEST) -> int:
    """0 if a rebuild gave the committed model byte for byte, else 1 (with the reason)."""
    entry = Manifest.parse(manifest_path.read_bytes()).get(name)
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    if digest == entry.sha256:
        print(f"{entry.label}: rebuild reproduces {entry.file} ({digest})")
        return 0
    print(f"{entry.label}: rebuild gives {digest}, manifest says {entry.sha256}")
    return 1
