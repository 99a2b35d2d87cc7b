"""Offline verification of an evidence package: what was altered, named.

Checks, in order, and reports every failure (not only the first):
1. the seal: Ed25519 signature over the canonical manifest, under a *trusted* key when the
   caller supplies one (else the key embedded in the package, reported as a warning: a
   forger could re-sign with their own key);
2. the timestamp: TSA signature, and that it covers this seal's signature;
3. the event chain: every event's hash and previous-hash link, and the signed head;
4. every file: sealed bytes against the signed digest; with the data key also decrypts and
   checks the plaintext digest;
5. with a catalogue, the process: steps in order, completed only with every required step,
   supervisor authorisation by a second person (``process.check``);
6. the identity proof (``identity.check``): every terminal's signed step result against the
   terminals' CA (``device_ca`` given by the caller, else the one the package names, with a
   warning), its nonce/session/step binding and the certificate's revocation at the time
   the cloud received it (the package's revocations, plus a CRL the caller passes); every
   device step that passed is a verified result or a supervisor's override (listed);
7. the call recording: its reference and SHA-256 (manifest, or the ``recording.json``
   addendum when it was archived after sealing), and with the file, that it still hashes so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.catalogue import Catalogue
from cloud.evidence import addendum, chain, identity, package, process, tsa
from cloud.evidence.canonical import canonical
from cloud.evidence.keys import key_id, load_public, session_data_key
from common import suite as suite_lib


@dataclass
class Report:
    package: str
    session_id: str = ""
    events: int = 0
    files: int = 0
    bytes_hashed: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: verified terminal results (step, nonce, signer, serial, fingerprint, event)
    signed_steps: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    recording: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _pick_key(
    embedded_pem: str, trusted: Sequence[ed25519.Ed25519PublicKey], what: str, report: Report
) -> ed25519.Ed25519PublicKey | None:
    try:
        embedded = load_public(embedded_pem)
    except (ValueError, TypeError):
        embedded = None
    if not trusted:
        report.warnings.append(
            f"{what}: checked against the key inside the package only; pass --trust to "
            "check it against the cloud's published key"
        )
        if embedded is None:
            report.problems.append(f"{what}: embedded public key unreadable")
        return embedded
    wanted = key_id(embedded) if embedded is not None else None
    for key in trusted:
        if key_id(key) == wanted:
            return key
    report.problems.append(f"{what}: signed by key {wanted}, which is not a trusted key")
    return None


def verify(
    directory: Path,
    trusted: Sequence[ed25519.Ed25519PublicKey] = (),
    data_master: bytes | None = None,
    catalogue: Catalogue | None = None,
    *,
    device_ca: Sequence[x509.Certificate] = (),
    crl: bytes | None = None,
    recording: Path | None = None,
) -> Report:
    """Verify the package in ``directory`` (raises PackageFormatError if it is not one).

    With a ``catalogue`` it also checks the sealed steps against the business's process;
    ``device_ca``: the terminals' CA certificates to trust (else the package's, warned);
    ``crl``: a PEM CRL from provisioning (``GET /api/v1/enrol/crl``); ``recording``: the
    recording file to hash against the sealed SHA-256.
    """
    doc = package.read_document(directory)
    manifest: dict[str, Any] = doc["manifest"]
    report = Report(str(directory), str(manifest.get("session_id", "")))
    try:
        suite = suite_lib.Suite(str(manifest.get("suite")))
    except ValueError:
        report.problems.append(f"manifest: unknown crypto suite {manifest.get('suite')!r}")
        return report

    seal = doc["seal"]
    signature = b""
    key = _pick_key(seal.get("public_key", ""), trusted, "seal", report)
    try:
        signature = bytes.fromhex(seal["signature"])
        if key is not None:
            key.verify(signature, canonical(manifest))
    except (KeyError, ValueError, TypeError):
        report.problems.append("seal: signature malformed")
    except InvalidSignature:
        report.problems.append(
            "seal: signature invalid — the manifest (events, file digests, operator) was "
            "changed after the cloud sealed it"
        )

    stamp = doc["timestamp"]
    tsa_key = _pick_key(stamp.get("public_key", ""), trusted, "timestamp", report)
    if tsa_key is not None:
        report.problems += tsa.check(stamp, tsa_key, suite_lib.digest(suite, signature).hex())

    try:
        events = [chain.Event.from_json(e) for e in manifest.get("events", [])]
    except ValueError as err:
        report.problems.append(f"events: {err}")
        events = []
    report.events = len(events)
    report.problems += chain.check(suite, events)
    head = events[-1].hash if events else chain.GENESIS
    if head != manifest.get("chain_head"):
        report.problems.append(
            "events: chain head differs from the sealed head (events appended or cut off)"
        )

    if catalogue is not None:
        business = catalogue.businesses.get(str(manifest.get("business")))
        if business is None:
            report.warnings.append(f"process: business {manifest.get('business')!r} unknown")
        else:
            report.problems += process.check(events, business.steps, manifest.get("operator", {}))

    _check_identity(doc, events, device_ca, crl, report)
    _check_recording(directory, doc, key, recording, report)

    data_key = session_data_key(suite, data_master, report.session_id) if data_master else None
    for entry in manifest.get("files", []):
        _check_file(directory, entry, suite, data_key, report)
    return report


def _check_file(
    directory: Path,
    entry: dict[str, Any],
    suite: suite_lib.Suite,
    data_key: bytes | None,
    report: Report,
) -> None:
    name = str(entry.get("name", "?"))
    report.files += 1
    try:
        blob = (directory / "files" / package.safe_name(name)).read_bytes()
    except (OSError, ValueError):
        report.problems.append(f"file {name} ({entry.get('role')}): missing")
        return
    report.bytes_hashed += len(blob)
    if suite_lib.digest(suite, blob).hex() != entry.get("sealed_digest"):
        report.problems.append(f"file {name} ({entry.get('role')}): altered (digest mismatch)")
        return
    if data_key is not None:
        aad = f"{report.session_id}/{name}".encode()
        try:
            plain = suite_lib.decrypt(suite, data_key, blob, aad=aad)
        except suite_lib.DecryptError:
            report.problems.append(f"file {name}: does not decrypt under this session's key")
            return
        if suite_lib.digest(suite, plain).hex() != entry.get("digest"):
            report.problems.append(f"file {name}: plaintext digest mismatch")


def _check_identity(
    doc: dict[str, Any],
    events: Sequence[chain.Event],
    device_ca: Sequence[x509.Certificate],
    crl: bytes | None,
    report: Report,
) -> None:
    section = doc["manifest"].get("identity") or {}
    issuers = list(device_ca)
    if not issuers and section.get("device_ca"):
        try:
            issuers = identity.load_certificates(section["device_ca"])
        except ValueError as err:
            report.problems.append(f"identity: the package's device CA is unreadable ({err})")
        else:
            report.warnings.append(
                "identity: terminal certificates checked against the CA named inside the "
                "package; pass --device-ca to check them against the bank's own"
            )
    try:
        revoked = identity.revocations_from_json(section.get("revoked"))
    except (KeyError, TypeError, ValueError) as err:
        report.problems.append(f"identity: the sealed revocation list is unreadable ({err})")
        revoked = {}
    if crl is not None:
        try:
            for serial, at in identity.revocations_from_crl(crl, issuers).items():
                revoked[serial] = min(at, revoked.get(serial, at))
        except ValueError as err:
            report.problems.append(f"identity: CRL not usable: {err}")
    elif any(e.kind == "step_result" for e in events) and "revoked" not in section:
        report.warnings.append(
            "identity: revocation not checked (the package keeps no revocation list; pass --crl)"
        )
    teller = doc["manifest"].get("operator", {}).get("teller_id")
    found = identity.check(
        events,
        report.session_id,
        teller,
        issuers,
        revoked,
        legacy="identity" not in doc["manifest"],
    )
    report.problems += found.problems
    report.warnings += found.warnings
    report.signed_steps = found.results
    report.overrides = found.overrides


def _check_recording(
    directory: Path,
    doc: dict[str, Any],
    seal_key: ed25519.Ed25519PublicKey | None,
    recording: Path | None,
    report: Report,
) -> None:
    entry = (doc["manifest"].get("identity") or {}).get("recording")
    try:
        extra = addendum.read(directory)
    except ValueError as err:
        report.problems.append(f"{addendum.NAME}: {err}")
        extra = None
    if extra is not None:
        report.problems += addendum.check(extra, doc, seal_key)
        if entry is None:
            entry = extra.get("recording")
        else:
            report.problems.append(
                f"{addendum.NAME}: the sealed manifest already names the recording"
            )
    if not isinstance(entry, dict) or "sha256" not in entry:
        # Recording segments sealed as files (a terminal-side recorder) are the recording.
        if not any(f.get("role") == "recording" for f in doc["manifest"].get("files", [])):
            report.warnings.append("recording: the package names no call recording")
        if recording is not None:
            report.problems.append("recording: a file was given but the package names none")
        return
    report.recording = dict(entry)
    if recording is None:
        return
    digest = hashlib.sha256()
    try:
        with recording.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                report.bytes_hashed += len(chunk)
    except OSError as err:
        report.problems.append(f"recording: {recording} unreadable ({err})")
        return
    if digest.hexdigest() != entry["sha256"]:
        report.problems.append(
            f"recording: {recording} does not match the sealed SHA-256 (altered or another file)"
        )
