"""Ed25519 signing of manifest entries, and the set of public keys a terminal trusts.

A public key file holds the raw 32-byte key in base64 on one line (`*.pub`). Its key id is the
first 16 hex digits of SHA-256 over the raw key, so a signature names the key that made it.
The project's public key ships in `models/keys/`; a bank adds its own `.pub` there (or points
the terminal at its own key folder) and re-signs with `python -m modeltools.build.sign`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from models.manifest import ModelEntry, Signature

DEFAULT_KEY_DIR = Path(__file__).parent / "keys"


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    """The `.pub` file content for `public`."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode() + "\n"


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as err:
        raise ValueError(f"not a base64 Ed25519 public key: {err}") from err


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An unencrypted PKCS#8 PEM Ed25519 private key (as `openssl genpkey -algorithm ed25519`)."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


@dataclass(frozen=True)
class TrustedKeys:
    """Public keys by key id; a model signed by any of them is accepted."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def from_dir(cls, folder: Path = DEFAULT_KEY_DIR) -> TrustedKeys:
        keys = [parse_public_key(p.read_text()) for p in sorted(folder.glob("*.pub"))]
        return cls({key_id(k): k for k in keys})

    @classmethod
    def of(cls, *publics: Ed25519PublicKey) -> TrustedKeys:
        return cls({key_id(k): k for k in publics})

    def verify(self, entry: ModelEntry) -> str | None:
        """None if `entry` carries a valid signature by a trusted key, else why not."""
        sig = entry.signature
        if sig is None:
            return "entry is unsigned"
        public = self.keys.get(sig.key_id)
        if public is None:
            return f"signed by key {sig.key_id}, which is not in the trusted keys"
        try:
            public.verify(base64.b64decode(sig.ed25519), entry.signed_bytes())
        except (InvalidSignature, ValueError):
            return f"signature by key {sig.key_id} does not match the entry"
        return None


def sign(entry: ModelEntry, private: Ed25519PrivateKey) -> ModelEntry:
    """`entry` with a fresh signature by `private` (Ed25519 is deterministic)."""
    value = base64.b64encode(private.sign(entry.signed_bytes())).decode()
    sig = Signature(key_id=key_id(private.public_key()), ed25519=value)
    return ModelEntry(**{**entry.__dict__, "signature": sig})
