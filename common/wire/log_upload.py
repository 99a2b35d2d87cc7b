"""A terminal's log bundle uploaded in content-addressed, signed chunks. Pure.

``collect_logs`` with ``upload`` sends the compressed, redacted bundle to the cloud's
terminal HTTPS listener. That listener does not see a client certificate (uvicorn does not
pass it to the app), so the terminal proves who it is the way certificate renewal does: it
signs with the private key of its enrolled certificate (ECDSA P-256, SHA-256) and shows the
certificate once, with the manifest.

- The **manifest** names the upload (the ``collect_logs`` command's id, so an upload exists
  only while the cloud has that command open for that terminal), the terminal, the bundle's
  size and SHA-256, the chunk size and every chunk's SHA-256 in order. Signed under
  ``cuntong-log-manifest-v1``.
- Each **chunk** is sent with a signature over ``cuntong-log-chunk-v1``, the upload id, the
  terminal id, its index and its SHA-256: a chunk cannot be moved to another upload, another
  place in this one, or changed in a byte, and a chunk sent twice is the same chunk (resume
  is idempotent).
- The cloud **reassembles** the chunks in the manifest's order and checks the whole digest.

Both ends use this module: the agent to plan and sign, the cloud to check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from common.errors import Refusal

MANIFEST_DOMAIN = b"cuntong-log-manifest-v1\n"
CHUNK_DOMAIN = b"cuntong-log-chunk-v1\n"
MIN_CHUNK = 1024
MAX_CHUNK = 1024 * 1024
DEFAULT_CHUNK = 256 * 1024
#: The largest compressed bundle a terminal may upload.
MAX_BUNDLE = 32 * 1024 * 1024
#: HTTP header that carries a chunk's signature (hex).
SIGNATURE_HEADER = "x-cuntong-signature"


class UploadRefused(Refusal, ValueError):
    """A manifest or chunk the cloud will not take; ``reason`` names why
    (``bad_manifest``, ``bad_signature``, ``chunk_digest_mismatch``, ``digest_mismatch`` …)."""


def _hex64(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64:
        raise UploadRefused("bad_manifest", f"{what} must be a SHA-256 in hex")
    try:
        bytes.fromhex(value)
    except ValueError as err:
        raise UploadRefused("bad_manifest", f"{what} must be a SHA-256 in hex") from err
    return value


@dataclass(frozen=True, slots=True)
class Manifest:
    upload_id: str
    terminal_id: str
    size: int
    sha256: str
    chunk_size: int
    chunks: tuple[str, ...]

    def __post_init__(self) -> None:
        if not (0 < len(self.upload_id) <= 64) or not (0 < len(self.terminal_id) <= 64):
            raise UploadRefused("bad_manifest", "upload_id and terminal_id are 1-64 characters")
        if not MIN_CHUNK <= self.chunk_size <= MAX_CHUNK:
            raise UploadRefused("bad_manifest", f"chunk_size must be {MIN_CHUNK}-{MAX_CHUNK}")
        if not 0 < self.size <= MAX_BUNDLE:
            raise UploadRefused("bad_manifest", f"size must be 1-{MAX_BUNDLE} bytes")
        if len(self.chunks) != -(-self.size // self.chunk_size):
            raise UploadRefused("bad_manifest", "chunk count does not match size / chunk_size")
        _hex64(self.sha256, "sha256")
        for i, digest in enumerate(self.chunks):
            _hex64(digest, f"chunks[{i}]")

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "upload_id": self.upload_id,
            "terminal_id": self.terminal_id,
            "size": self.size,
            "sha256": self.sha256,
            "chunk_size": self.chunk_size,
            "chunks": list(self.chunks),
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        try:
            body = json.loads(raw)
            fields = {k: body[k] for k in ("upload_id", "terminal_id", "size", "sha256")}
            chunk_size, chunks = body["chunk_size"], body["chunks"]
        except (ValueError, TypeError, KeyError) as err:
            raise UploadRefused("bad_manifest", f"not a manifest: {err}") from err
        if not isinstance(chunks, list) or not isinstance(chunk_size, int):
            raise UploadRefused("bad_manifest", "chunks must be a list, chunk_size an integer")
        if not all(isinstance(fields[k], str) for k in ("upload_id", "terminal_id")):
            raise UploadRefused("bad_manifest", "upload_id and terminal_id must be strings")
        if not isinstance(fields["size"], int):
            raise UploadRefused("bad_manifest", "size must be an integer")
        return cls(**fields, chunk_size=chunk_size, chunks=tuple(chunks))

    def chunk_length(self, index: int) -> int:
        if not 0 <= index < len(self.chunks):
            raise UploadRefused("no_such_chunk", f"index {index} of {len(self.chunks)}")
        return min(self.chunk_size, self.size - index * self.chunk_size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plan(upload_id: str, terminal_id: str, bundle: bytes, chunk_size: int) -> Manifest:
    """The manifest of ``bundle`` cut into ``chunk_size`` pieces."""
    chunks = tuple(sha256(bundle[i : i + chunk_size]) for i in range(0, len(bundle), chunk_size))
    return Manifest(upload_id, terminal_id, len(bundle), sha256(bundle), chunk_size, chunks)


def chunk(bundle: bytes, manifest: Manifest, index: int) -> bytes:
    start = index * manifest.chunk_size
    return bundle[start : start + manifest.chunk_length(index)]


def manifest_message(manifest: Manifest) -> bytes:
    return MANIFEST_DOMAIN + manifest.to_bytes()


def chunk_message(upload_id: str, terminal_id: str, index: int, digest: str) -> bytes:
    return CHUNK_DOMAIN + f"{upload_id}\n{terminal_id}\n{index}\n{digest}".encode()


def sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> str:
    return key.sign(message, ec.ECDSA(hashes.SHA256())).hex()


def verify(public_key: ec.EllipticCurvePublicKey, message: bytes, signature: str) -> None:
    """``UploadRefused("bad_signature")`` unless ``signature`` (hex) signs ``message``."""
    try:
        public_key.verify(bytes.fromhex(signature), message, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature) as err:
        raise UploadRefused("bad_signature", "not signed by the terminal's enrolled key") from err


def check_chunk(manifest: Manifest, index: int, data: bytes) -> str:
    """The chunk's digest if it is the chunk the manifest names at ``index``."""
    expected = manifest.chunks[index] if 0 <= index < len(manifest.chunks) else None
    if expected is None:
        raise UploadRefused("no_such_chunk", f"index {index} of {len(manifest.chunks)}")
    digest = sha256(data)
    if len(data) != manifest.chunk_length(index) or digest != expected:
        raise UploadRefused("chunk_digest_mismatch", f"chunk {index} is not {expected[:12]}…")
    return digest


def assemble(manifest: Manifest, chunks: Sequence[bytes]) -> bytes:
    """The bundle from its chunks in order, checked chunk by chunk and whole."""
    if len(chunks) != len(manifest.chunks):
        raise UploadRefused("incomplete", f"{len(chunks)} of {len(manifest.chunks)} chunks")
    for i, data in enumerate(chunks):
        check_chunk(manifest, i, data)
    bundle = b"".join(chunks)
    if len(bundle) != manifest.size or sha256(bundle) != manifest.sha256:
        raise UploadRefused("digest_mismatch", "the reassembled bundle is not the manifest's")
    return bundle
