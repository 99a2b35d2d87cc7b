"""The cloud's evidence keys under ``<state>/keys/`` (0600), created on first start.

evidence-seal-ed25519.pem   signs each package's manifest (the cloud's seal)
evidence-tsa-ed25519.pem    the cloud's own time-stamping authority key (see ``tsa``)
evidence-data-master.key    32 random bytes; each session's file-encryption key is derived
                            from it and the session id, so one leaked key opens one session
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from common import suite as suite_lib
from provisioning.files import ensure_private_dir, write_private


def public_pem(key: ed25519.Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def key_id(key: ed25519.Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 over the raw public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public(pem: str | bytes) -> ed25519.Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


@dataclass(frozen=True)
class EvidenceKeys:
    seal: ed25519.Ed25519PrivateKey
    tsa: ed25519.Ed25519PrivateKey
    data_master: bytes

    def data_key(self, suite: suite_lib.Suite, session_id: str) -> bytes:
        return session_data_key(suite, self.data_master, session_id)

    @classmethod
    def generate(cls) -> EvidenceKeys:
        return cls(
            ed25519.Ed25519PrivateKey.generate(),
            ed25519.Ed25519PrivateKey.generate(),
            os.urandom(32),
        )


def session_data_key(suite: suite_lib.Suite, master: bytes, session_id: str) -> bytes:
    return suite_lib.derive_key(
        suite, master, f"evidence-data:{session_id}", suite_lib.key_bytes(suite)
    )


def _private(path: Path) -> ed25519.Ed25519PrivateKey:
    if not path.exists():
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return key


def load_or_create(state_dir: Path) -> EvidenceKeys:
    directory = ensure_private_dir(state_dir / "keys")
    master = directory / "evidence-data-master.key"
    if not master.exists():
        write_private(master, os.urandom(32))
    return EvidenceKeys(
        _private(directory / "evidence-seal-ed25519.pem"),
        _private(directory / "evidence-tsa-ed25519.pem"),
        master.read_bytes(),
    )
