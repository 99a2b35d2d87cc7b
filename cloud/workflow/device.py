"""Checking a terminal's signed step result before a device step may pass (pure).

``check_result`` takes the result, the terminal the session belongs to, the nonces the desk
issued for the session (and which of them were already answered), the CA certificates that
issue terminal certificates, and ``now``. It refuses, with ``StepResultRefused`` naming the
cause, in this order: a result for another session, a replayed nonce, a nonce never issued
(or issued for another step), a certificate not issued by our CA, not valid now or naming
another terminal (an unknown signer), a revoked certificate, a signature that does not
verify, and a ``full`` result whose digest is not the signed one. Step order is the engine's rule
(``engine.record_device_step``).

A certificate the provisioning registry lists as revoked (``revoked``: serial -> when) is
refused as a "revoked signer" from its revocation time on. The signer rules are the
evidence verifier's (``cloud.evidence.identity.signer_problem``), so a sealed package is
checked offline by the same rules.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.evidence.identity import Revoked, fingerprint, signer_problem
from cloud.workflow.errors import StepResultRefused
from common.wire.call import StepResult, before_queue_session, result_digest


@dataclass(frozen=True, slots=True)
class Verified:
    """A step result the cloud checked: what goes on the timeline and into the evidence."""

    step: str
    nonce: str
    outcome: str
    reason: str
    masked: Mapping[str, Any]
    digest: str
    signature: str
    certificate: str
    signer: str
    signer_serial: str
    at: dt.datetime
    full: Mapping[str, Any] | None = None
    #: the exact bytes the terminal signed, its own time string, the certificate's SHA-256
    signed: bytes = b""
    signed_time: str = ""
    fingerprint: str = ""

    def evidence(self) -> dict[str, Any]:
        """The signed result as the timeline keeps it (no ``full``: masked and digest)."""
        return {
            "step": self.step,
            "nonce": self.nonce,
            "outcome": self.outcome,
            "reason": self.reason,
            "masked": dict(self.masked),
            "digest": self.digest,
            "time": self.at.isoformat(),
            "signature": self.signature,
            "certificate": self.certificate,
            "signer": self.signer,
            "signer_serial": self.signer_serial,
            "signer_fingerprint": self.fingerprint,
            "signed_time": self.signed_time,
            "signed": base64.b64encode(self.signed).decode(),
        }


def _signer(
    pem: str,
    terminal_id: str,
    issuers: Sequence[x509.Certificate],
    now: dt.datetime,
    revoked: Revoked,
) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as err:
        raise StepResultRefused(f"unknown signer: the certificate does not parse ({err})") from err
    problem = signer_problem(cert, terminal_id, issuers, now, revoked)
    if problem is not None:
        raise StepResultRefused(problem)
    return cert


def check_result(
    result: StepResult,
    *,
    session_id: str,
    terminal_id: str,
    issued: Mapping[str, str],
    answered: Iterable[str],
    issuers: Sequence[x509.Certificate],
    now: dt.datetime,
    revoked: Revoked | None = None,
) -> Verified:
    """``issued``: nonce -> step the desk asked for; ``answered``: nonces already used;
    ``revoked``: serial -> revocation time of the terminals' revoked certificates."""
    if result.session != session_id:
        raise StepResultRefused(
            f"a result for another session ({result.session}) sent in session {session_id}"
        )
    if result.nonce in set(answered):
        raise StepResultRefused(f"replayed nonce: {result.nonce} was already answered")
    asked = issued.get(result.nonce)
    if asked is None:
        raise StepResultRefused(f"nonce {result.nonce} was never issued in this session")
    if asked != result.step:
        raise StepResultRefused(f"nonce {result.nonce} was issued for {asked}, not {result.step}")
    cert = _signer(result.certificate, terminal_id, issuers, now, revoked or {})
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise StepResultRefused("unknown signer: the terminal's key is not an EC key")
    try:
        key.verify(
            base64.b64decode(result.signature, validate=True),
            result.signing_input(),
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, binascii.Error, ValueError) as err:
        raise StepResultRefused("the result's signature does not verify") from err
    if result.full is not None and result_digest(result.full) != result.digest:
        raise StepResultRefused("the full result does not match the signed digest")
    return Verified(
        result.step, result.nonce, result.outcome, result.reason, result.masked,
        result.digest, result.signature, result.certificate, terminal_id,
        format(cert.serial_number, "x"), result.at, result.full,
        signed=result.signing_input(), signed_time=result.time, fingerprint=fingerprint(cert),
    )  # fmt: skip


#: How old an ID read made before queueing may be when the desk receives its request, and
#: how far ahead of the cloud's clock its signed time may run (terminal clocks drift).
BEFORE_QUEUE_MAX_AGE = dt.timedelta(minutes=10)
BEFORE_QUEUE_SKEW = dt.timedelta(minutes=2)


def check_before_queue(
    result: StepResult,
    *,
    request_id: str,
    terminal_id: str,
    used: Iterable[str],
    issuers: Sequence[x509.Certificate],
    now: dt.datetime,
    fresh: bool = True,
    revoked: Revoked | None = None,
) -> Verified:
    """An ID read the customer made before queueing (先刷身份证), sent with request
    ``request_id``: checked as an in-call result whose session is
    ``before_queue_session(request_id)`` and whose nonce is the request id, so it cannot be
    moved to another request nor pass as an in-call result. ``used``: request ids already
    taken (a replayed request). ``fresh``: also refuse a read signed more than
    ``BEFORE_QUEUE_MAX_AGE`` before ``now`` (or too far ahead of it) — checked when the
    desk receives the request; the workflow re-checks the rest when it takes the read."""
    if result.step != "id_card_read":
        raise StepResultRefused(f"a {result.step} result cannot be read before queueing")
    verified = check_result(
        result,
        session_id=before_queue_session(request_id),
        terminal_id=terminal_id,
        issued={request_id: "id_card_read"},
        answered=used,
        issuers=issuers,
        now=now,
        revoked=revoked,
    )
    if fresh:
        age = now - verified.at
        if age > BEFORE_QUEUE_MAX_AGE:
            raise StepResultRefused(
                f"stale ID read: signed {int(age.total_seconds())} s before the request "
                f"reached the desk (at most {int(BEFORE_QUEUE_MAX_AGE.total_seconds())} s)"
            )
        if -age > BEFORE_QUEUE_SKEW:
            raise StepResultRefused("the ID read's signed time is ahead of the cloud's clock")
    return verified
