"""Signed requests and answers: HMAC-SHA256 over a canonical text (pure).

    canonical = METHOD \\n PATH \\n TIMESTAMP \\n NONCE \\n SESSION-ID \\n hex(sha256(body))

Headers: X-Key-Id, X-Timestamp (unix seconds), X-Nonce (random hex), X-Session-Id,
X-Signature (hex). The service refuses a timestamp more than MAX_SKEW_S from its clock and a
nonce it has seen within that window; answers are signed the same way (method "ANSWER"), so
the terminal knows the verdict came from the gateway and is for its session.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

MAX_SKEW_S = 300.0
HEADERS = ("x-key-id", "x-timestamp", "x-nonce", "x-session-id", "x-signature")


@dataclass(frozen=True)
class Signed:
    """The signature fields of one request or answer."""

    key_id: str
    timestamp: int
    nonce: str
    session_id: str
    signature: str

    def headers(self) -> dict[str, str]:
        return dict(
            zip(
                HEADERS,
                (self.key_id, str(self.timestamp), self.nonce, self.session_id, self.signature),
                strict=True,
            )
        )

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Signed:
        """Raise ValueError naming the first missing or malformed header."""
        lower = {k.lower(): v for k, v in headers.items()}
        for name in HEADERS:
            if not lower.get(name):
                raise ValueError(f"missing header {name}")
        try:
            timestamp = int(lower["x-timestamp"])
        except ValueError as err:
            raise ValueError("x-timestamp is not unix seconds") from err
        return cls(
            lower["x-key-id"],
            timestamp,
            lower["x-nonce"],
            lower["x-session-id"],
            lower["x-signature"],
        )


def canonical(
    method: str, path: str, timestamp: int, nonce: str, session_id: str, body: bytes
) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), path, str(timestamp), nonce, session_id, digest)).encode()


def sign(
    key: bytes,
    key_id: str,
    method: str,
    path: str,
    timestamp: int,
    nonce: str,
    session_id: str,
    body: bytes,
) -> Signed:
    mac = hmac.new(key, canonical(method, path, timestamp, nonce, session_id, body), "sha256")
    return Signed(key_id, timestamp, nonce, session_id, mac.hexdigest())


def check(
    key: bytes,
    signed: Signed,
    method: str,
    path: str,
    body: bytes,
    now: float,
    max_skew_s: float = MAX_SKEW_S,
) -> str | None:
    """None if the signature is good and fresh, else a reason: bad_signature, stale_timestamp."""
    want = sign(
        key, signed.key_id, method, path, signed.timestamp, signed.nonce, signed.session_id, body
    )
    if not hmac.compare_digest(want.signature, signed.signature):
        return "bad_signature"
    if abs(now - signed.timestamp) > max_skew_s:
        return "stale_timestamp"
    return None
