"""The face-match manifest signed by a throwaway key (the shipped entries await the project
key, docs/vision.md), for the tests and the bench."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from models.manifest import Manifest
from models.registry import FACE_MATCH_MANIFEST, read_manifest
from models.signing import TrustedKeys, sign


def signed_copy(folder: Path, key: Ed25519PrivateKey, **changes: str) -> tuple[Path, TrustedKeys]:
    """models/face_match.json signed by `key` into `folder`; `changes` edit the embedder entry."""
    import dataclasses

    shipped = read_manifest(FACE_MATCH_MANIFEST)
    entries = [
        sign(dataclasses.replace(e, **changes) if e.role == "face_embedder" else e, key)
        for e in shipped.models
    ]
    path = folder / "face_match.json"
    path.write_bytes(Manifest(tuple(entries)).to_bytes())
    return path, TrustedKeys.of(key.public_key())
