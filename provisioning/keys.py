"""The cloud's own secrets under the state folder (0700 / 0600), created on first start.

<state>/keys/command-ed25519.pem   signs every cloud → terminal command
<state>/keys/event-mac-master.key  32 random bytes; each terminal's event MAC key is
                                   derived from it and its terminal id, so the registry
                                   stores no per-terminal secret
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from common import suite as suite_lib
from provisioning.files import ensure_private_dir, write_private


@dataclass(frozen=True)
class CloudKeys:
    command_key: ed25519.Ed25519PrivateKey
    event_mac_master: bytes

    @property
    def command_public_pem(self) -> bytes:
        return self.command_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def event_mac_key(self, suite: suite_lib.Suite, terminal_id: str) -> bytes:
        """The MAC key a terminal uses for its events (handed over at enrolment)."""
        return suite_lib.derive_key(suite, self.event_mac_master, f"event-mac:{terminal_id}")


def load_or_create(state_dir: Path) -> CloudKeys:
    directory = ensure_private_dir(state_dir / "keys")
    command_path = directory / "command-ed25519.pem"
    mac_path = directory / "event-mac-master.key"
    if not command_path.exists():
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(command_path, pem)
    if not mac_path.exists():
        write_private(mac_path, os.urandom(32))
    loaded = serialization.load_pem_private_key(command_path.read_bytes(), password=None)
    if not isinstance(loaded, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{command_path} is not an Ed25519 key")
    return CloudKeys(loaded, mac_path.read_bytes())


def load_command_public_key(pem: bytes) -> ed25519.Ed25519PublicKey:
    """The terminal's side: the cloud's command key from the enrolment answer."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError("command key is not Ed25519")
    return key
