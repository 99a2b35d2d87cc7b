"""Sign a step result with the terminal's device key (pure: ``now`` is an argument)."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from common.wire.call import StepRequest, StepResult, result_digest


@dataclass(frozen=True, slots=True)
class Done:
    """What a step handler found: the outcome, a plain reason, what a teller may see and
    the full result (bulky or sensitive parts such as images only by their digest)."""

    outcome: str
    reason: str = ""
    masked: dict[str, Any] = field(default_factory=dict)
    full: dict[str, Any] = field(default_factory=dict)
    #: Whether the cloud needs ``full`` itself (the ID read's data for the online check);
    #: otherwise only its digest leaves the terminal.
    send_full: bool = False


def sign_result(
    key: ec.EllipticCurvePrivateKey,
    certificate_pem: str,
    request: StepRequest,
    done: Done,
    now: dt.datetime,
) -> StepResult:
    """The signed answer to ``request``: the signature covers session, step, nonce, time,
    the digest of ``done.full``, the outcome, and the reason and masked data (by digest)."""
    if now.tzinfo is None:
        raise ValueError("naive datetime; pass an aware UTC time")
    time = now.astimezone(dt.UTC).isoformat()
    digest = result_digest(done.full)
    unsigned = StepResult(
        request.session, request.step, request.nonce, time, done.outcome, done.reason[:200],
        done.masked, digest, "-", certificate_pem, done.full if done.send_full else None,
    )  # fmt: skip
    signature = key.sign(unsigned.signing_input(), ec.ECDSA(hashes.SHA256()))
    return StepResult(
        unsigned.session, unsigned.step, unsigned.nonce, unsigned.time, unsigned.outcome,
        unsigned.reason, unsigned.masked, unsigned.digest,
        base64.b64encode(signature).decode(), certificate_pem, unsigned.full,
    )  # fmt: skip
