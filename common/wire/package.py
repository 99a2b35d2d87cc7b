"""OTA packages: a manifest (component, version, size, SHA-256) signed by the cloud. Pure.

The signature covers the canonical manifest bytes under its own domain prefix, with the
key terminals already trust for commands (handed over at enrolment) — so a terminal needs
no second trust anchor, and a signed command can never pass for a signed package.
Terminals verify the manifest before downloading and the payload's SHA-256 before
installing; either failing leaves nothing installed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from common.errors import Refusal
from common.wire.commands import SigningKey, VerifyKey

DOMAIN = b"cuntong-package-v1\n"
#: agent, a peripheral adapter, or an ONNX model.
COMPONENT = re.compile(r"^(agent|adapter\.[a-z0-9_]{1,32}|model\.[a-z0-9_]{1,32})$")
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,31}$")
#: In an agent package (the project's wheel): the folder of the locked dependency wheels it
#: carries, and the requirements the terminal installs them by (``fleet.agent_release``
#: builds it, ``edge.agent_slots`` installs it). A hyphen: never an importable name.
AGENT_DEPS = "agent-deps/"
AGENT_REQUIREMENTS = AGENT_DEPS + "requirements.txt"
#: An adapter package's index: ``{"kind": <peripheral kind>, "module": <its module>}``
#: (``edge.adapter_slots``).
ADAPTER_INDEX = "adapter.json"


class PackageRefused(Refusal, ValueError):
    """A manifest or payload that must not be installed; ``reason`` says why."""


@dataclass(frozen=True, slots=True)
class Manifest:
    component: str
    version: str
    size: int
    sha256: str

    def __post_init__(self) -> None:
        if not COMPONENT.match(self.component):
            raise ValueError(
                f"component must be agent, adapter.<x> or model.<x>: {self.component!r}"
            )
        if not VERSION.match(self.version):
            raise ValueError(f"bad version {self.version!r}")
        if self.size < 0 or not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError("size must be >= 0 and sha256 64 lowercase hex digits")

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        try:
            obj = json.loads(raw)
            return cls(
                str(obj["component"]), str(obj["version"]), int(obj["size"]), str(obj["sha256"])
            )
        except (ValueError, KeyError, TypeError) as err:
            raise PackageRefused("malformed_manifest", str(err)) from err


def describe(component: str, version: str, payload: bytes) -> Manifest:
    return Manifest(component, version, len(payload), hashlib.sha256(payload).hexdigest())


def sign(key: SigningKey, manifest: Manifest) -> bytes:
    message = DOMAIN + manifest.to_bytes()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def verify(key: VerifyKey, raw_manifest: bytes, signature: bytes) -> Manifest:
    """The manifest, if the cloud signed exactly these bytes; PackageRefused otherwise."""
    manifest = Manifest.parse(raw_manifest)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, DOMAIN + raw_manifest)
        else:
            key.verify(signature, DOMAIN + raw_manifest, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as err:
        raise PackageRefused("bad_signature", f"{manifest.component} {manifest.version}") from err
    return manifest
