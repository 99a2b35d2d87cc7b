"""Who the customer is, as a sealed timeline proves it: the terminals' signed step results,
the supervisors' overrides, checked offline (pure).

Each ``step_result`` event keeps the terminal's result as the cloud received it (without the
``full`` data, which stays sealed): the exact bytes the terminal signed (``signed``,
base64), its time string, the digest, the signature, the leaf certificate with its serial
and SHA-256 fingerprint. ``check`` re-does, for each, what the cloud did at receipt
(``cloud.workflow.device``), against the sealed chain instead of the database:

- the signed bytes are ``signing_input`` of *this* package's session, the step, the nonce,
  the time, the digest, the outcome and the digest of the kept reason and masked data (a
  result moved from another session or step, or whose outcome, scores or masked fields were
  edited, does not fit);
- the nonce was requested earlier in this chain, for this step, from this terminal, and
  answered once;
- the certificate was issued by the terminals' CA, was valid when the cloud received the
  result (the event's time: the terminal's own clock is not trusted), names the terminal
  that answered, and was not revoked at or before that time;
- the signature verifies under it.

Every device step that passed as the terminal's must point at such a verified result whose
signed outcome is ``passed``; otherwise it passed by a supervisor's override (listed, with
who, when and why). A result kept in the first signing format (``cuntong-step-result-v1``,
packages sealed before v2) is checked as it was signed and named in a warning: its outcome,
reason and masked data are bound by the cloud's seal and the chain only.

The same signer rules serve the cloud at receipt (``signer_problem``), so both ends refuse
the same certificates for the same reasons.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from cloud.evidence.chain import Event
from common.wire.call import (
    DEVICE_STEPS,
    SIGNING_LABEL_V1,
    before_queue_session,
    shown_digest,
    signing_input,
    signing_input_v1,
)

#: serial number -> when it was revoked
Revoked = Mapping[int, dt.datetime]


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode()


def load_certificates(pems: Iterable[str | bytes]) -> list[x509.Certificate]:
    """Every certificate in the PEM texts (a bundle may hold several); ValueError if none."""
    certs: list[x509.Certificate] = []
    for pem in pems:
        data = pem.encode() if isinstance(pem, str) else pem
        certs += x509.load_pem_x509_certificates(data)
    if not certs:
        raise ValueError("no certificate in the PEM text")
    return certs


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def revocations_from_crl(pem: bytes, issuers: Sequence[x509.Certificate]) -> dict[int, dt.datetime]:
    """The (serial -> revoked at) of a CRL signed by one of ``issuers``; ValueError if the
    CRL does not parse or no issuer signed it (a CRL anyone could write proves nothing)."""
    crl = x509.load_pem_x509_crl(pem)
    for issuer in issuers:
        key = issuer.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey) and crl.is_signature_valid(
            key
        ):
            return {r.serial_number: r.revocation_date_utc for r in crl}
    raise ValueError("the CRL is not signed by the terminals' CA")


def revocations_from_json(raw: Any) -> dict[int, dt.datetime]:
    """The revocation list a package keeps (``[{"serial": hex, "revoked_at": iso}]``)."""
    out: dict[int, dt.datetime] = {}
    for item in raw or []:
        out[int(str(item["serial"]), 16)] = dt.datetime.fromisoformat(str(item["revoked_at"]))
    return out


def revocations_to_json(revoked: Iterable[tuple[int, dt.datetime]]) -> list[dict[str, str]]:
    return [
        {"serial": format(serial, "x"), "revoked_at": at.astimezone(dt.UTC).isoformat()}
        for serial, at in sorted(revoked)
    ]


def signer_problem(
    cert: x509.Certificate,
    terminal_id: str,
    issuers: Sequence[x509.Certificate],
    at: dt.datetime,
    revoked: Revoked,
) -> str | None:
    """Why ``cert`` may not sign for ``terminal_id`` at ``at``, or None if it may."""
    for issuer in issuers:
        try:
            cert.verify_directly_issued_by(issuer)
            break
        except (ValueError, TypeError, InvalidSignature):
            continue
    else:
        return "unknown signer: the certificate is not issued by our CA"
    if not cert.not_valid_before_utc <= at < cert.not_valid_after_utc:
        return "unknown signer: the terminal's certificate was not valid at that time"
    if common_name(cert) != terminal_id:
        return (
            f"unknown signer: the result is signed by terminal {common_name(cert)!r}, "
            f"not by {terminal_id!r} which serves this session"
        )
    when = revoked.get(cert.serial_number)
    if when is not None and when <= at:
        return (
            f"revoked signer: terminal {terminal_id!r} signed with certificate serial "
            f"{cert.serial_number:x}, revoked at {when.astimezone(dt.UTC).isoformat()}"
        )
    return None


def signature_verifies(cert: x509.Certificate, signature_b64: str, signed: bytes) -> bool:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(
            base64.b64decode(signature_b64, validate=True), signed, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


@dataclass
class IdentityReport:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: each verified result: step, nonce, signer, serial, fingerprint, event
    results: list[dict[str, Any]] = field(default_factory=list)
    #: each override: step, by, at, reason
    overrides: list[dict[str, Any]] = field(default_factory=list)


def _kept_signed(data: Mapping[str, Any]) -> bytes | None:
    """The signed bytes the cloud kept with a result (None when it kept none)."""
    if "signed" not in data:
        return None
    try:
        return base64.b64decode(str(data["signed"]), validate=True)
    except (binascii.Error, ValueError):
        return b""


def _result_problem(
    event: Event,
    session_id: str,
    requested: Mapping[str, tuple[str, str]],
    answered: set[str],
    issuers: Sequence[x509.Certificate],
    revoked: Revoked,
) -> tuple[str | None, dict[str, Any]]:
    data = event.data
    step, nonce = str(data.get("step")), str(data.get("nonce"))
    terminal = event.actor.removeprefix("terminal:")
    summary = {"step": step, "nonce": nonce, "signer": terminal, "event": event.seq}
    asked = requested.get(nonce)
    if asked is None:
        return f"nonce {nonce} was never requested in this session", summary
    if asked[0] != step:
        return f"nonce {nonce} was requested for {asked[0]}, not {step}", summary
    if asked[1] != terminal:
        return (
            f"nonce {nonce} was asked of terminal {asked[1]!r}, answered by {terminal!r}",
            summary,
        )
    if nonce in answered:
        return f"replayed nonce: {nonce} was already answered", summary
    try:
        time = str(data.get("signed_time") or data["time"])
        # An ID read made before queueing is bound to its request, not to this session.
        signed_session = before_queue_session(nonce) if data.get("before_queue") else session_id
        kept = _kept_signed(data)
        digest = str(data["digest"])
        if kept is not None and kept.startswith(SIGNING_LABEL_V1 + b"\n"):
            summary["format"] = "v1"
            expected = signing_input_v1(signed_session, step, nonce, time, digest)
        else:
            masked = data["masked"]
            if not isinstance(masked, dict):
                raise ValueError("'masked' is not an object")
            shown = shown_digest(str(data["reason"]), masked)
            expected = signing_input(
                signed_session, step, nonce, time, digest, str(data["outcome"]), shown
            )
        cert = x509.load_pem_x509_certificate(str(data["certificate"]).encode())
        at = dt.datetime.fromisoformat(event.at)
    except (KeyError, ValueError) as err:
        return f"the kept result is incomplete or unreadable ({err})", summary
    summary.update(serial=format(cert.serial_number, "x"), fingerprint=fingerprint(cert))
    if kept is not None and kept != expected:
        return (
            "the signed bytes do not bind this session, step, nonce, time, digest, outcome "
            "and masked data",
            summary,
        )
    if data.get("signer_serial") not in (None, summary["serial"]) or data.get(
        "signer_fingerprint"
    ) not in (None, summary["fingerprint"]):
        return "the certificate is not the one whose serial/fingerprint was recorded", summary
    if issuers:
        problem = signer_problem(cert, terminal, issuers, at, revoked)
        if problem is not None:
            return problem, summary
    if not signature_verifies(cert, str(data.get("signature", "")), expected):
        return "the terminal's signature does not verify", summary
    return None, summary


def check(
    events: Sequence[Event],
    session_id: str,
    teller_id: str | None,
    issuers: Sequence[x509.Certificate],
    revoked: Revoked,
    *,
    legacy: bool = False,
) -> IdentityReport:
    """Every signed step result and every device step of a sealed timeline, checked.

    ``legacy``: the package was sealed without an identity section (before terminals
    signed their steps); a device step passed without a signed result is then a warning,
    not a failure."""
    report = IdentityReport()
    unproven: list[str] = []
    requested: dict[str, tuple[str, str]] = {}
    answered: set[str] = set()
    #: nonce -> the outcome its verified result was signed with
    verified: dict[str, str] = {}
    for event in events:
        data = event.data
        step = str(data.get("step"))
        if event.kind == "step_requested":
            requested[str(data.get("nonce"))] = (step, str(data.get("terminal")))
        elif event.kind == "step_result":
            problem, summary = _result_problem(
                event, session_id, requested, answered, issuers, revoked
            )
            answered.add(summary["nonce"])
            if problem is None:
                verified[summary["nonce"]] = str(data.get("outcome"))
                report.results.append(summary)
                if summary.get("format") == "v1":
                    report.warnings.append(
                        f"step {step} (event {event.seq}): signed in the v1 format, which "
                        "does not cover its outcome, reason or masked data"
                    )
            else:
                report.problems.append(f"step {step} (event {event.seq}): {problem}")
        elif event.kind == "step" and step in DEVICE_STEPS and data.get("passed", True):
            if data.get("override"):
                reason = str(data.get("reason", "")).strip()
                report.overrides.append(
                    {"step": step, "by": event.actor, "at": event.at, "reason": reason}
                )
                if not reason:
                    report.problems.append(
                        f"step {step} (event {event.seq}): override without a reason"
                    )
                if teller_id is not None and event.actor == teller_id:
                    report.problems.append(
                        f"step {step} (event {event.seq}): overridden by the serving teller"
                    )
            elif str(data.get("nonce")) not in verified and legacy:
                unproven.append(step)
            elif str(data.get("nonce")) not in verified:
                report.problems.append(
                    f"step {step} (event {event.seq}): passed as {event.actor}'s without a "
                    "verified terminal result (forged or missing)"
                )
            elif (signed := verified[str(data.get("nonce"))]) != "passed":
                report.problems.append(
                    f"step {step} (event {event.seq}): passed on a result the terminal "
                    f"signed as {signed!r}"
                )
    if unproven:
        report.warnings.append(
            f"identity: sealed without an identity section (before terminals signed their "
            f"steps): device steps {unproven} passed without a terminal's signed result"
        )
    if (report.results or requested) and not issuers:
        report.warnings.append(
            "identity: terminal certificates not checked against a CA (the package names "
            "none; pass --device-ca)"
        )
    return report
