"""Terminal side of provisioning: key, CSR, enrolment, renewal, TLS context.

The private key is generated on the terminal and never leaves it. The identity folder holds
one generation per certificate, switched atomically through a ``current`` symlink, so a
crash during renewal leaves the old key and certificate usable::

    <dir>/ca.pem                  root CA (trust anchor for the broker and the API)
    <dir>/enrolment.json          terminal id, broker address, initial config, command key
    <dir>/gen-0001/key.pem        0600
    <dir>/gen-0001/cert.pem       leaf + issuing CA
    <dir>/current -> gen-0001

``renewal_due`` is a pure function of the certificate and ``now``; the agent calls
``renew`` when it says so and keeps its MQTT link: the broker checked the old certificate
at connect time and the next reconnect presents the new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from provisioning import ca as ca_lib
from provisioning.errors import ClaimRefused, EnrolmentRefused
from provisioning.files import ensure_private_dir, write_private
from provisioning.protocol import (
    EnrolmentRequest,
    EnrolmentResponse,
    FactoryClaim,
    RenewalRequest,
    renewal_message,
)

#: Renew once this share of the certificate's lifetime has passed (60 days of 90).
RENEW_FRACTION = 2 / 3
#: Spread renewals of a fleet enrolled in one day over this share of the lifetime.
RENEW_JITTER = 0.1


def new_csr(key: ec.EllipticCurvePrivateKey, terminal_id: str) -> bytes:
    """A PEM CSR for ``terminal_id`` (the CA sets the identity anyway; this is for humans)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, terminal_id)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def renew_at(cert: x509.Certificate, fraction: float = RENEW_FRACTION) -> dt.datetime:
    """When to renew: ``fraction`` of the lifetime plus a per-certificate jitter.

    The jitter comes from the serial, so it is stable across restarts and 10,000 terminals
    enrolled on the same day do not all come back in the same minute.
    """
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    spread = int.from_bytes(hashlib.sha256(str(cert.serial_number).encode()).digest()[:4]) / 2**32
    return start + (end - start) * (fraction + RENEW_JITTER * (spread - 0.5))


def renewal_due(cert: x509.Certificate, now: dt.datetime, fraction: float = RENEW_FRACTION) -> bool:
    """True once the certificate should be renewed (also when already expired)."""
    return now >= renew_at(cert, fraction)


@dataclass(frozen=True, slots=True)
class Identity:
    """The identity folder of one terminal."""

    directory: Path

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def info_path(self) -> Path:
        return self.directory / "enrolment.json"

    @property
    def key_path(self) -> Path:
        return self.directory / "current" / "key.pem"

    @property
    def cert_path(self) -> Path:
        return self.directory / "current" / "cert.pem"

    def exists(self) -> bool:
        return self.cert_path.exists() and self.info_path.exists()

    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_path.read_bytes())

    def key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.key_path} is not an EC key")
        return key

    def info(self) -> dict[str, Any]:
        """The enrolment answer minus the certificate: terminal id, broker, config, keys."""
        data: dict[str, Any] = json.loads(self.info_path.read_text())
        return data

    def ssl_context(self) -> ssl.SSLContext:
        """Client context for the broker: our chain and key, trusting only our root CA."""
        return client_ssl_context(self.ca_path, self.cert_path, self.key_path)

    def install(self, key: ec.EllipticCurvePrivateKey, answer: EnrolmentResponse) -> None:
        """Store a new generation and switch ``current`` to it atomically."""
        ensure_private_dir(self.directory)
        generations = sorted(self.directory.glob("gen-*"))
        number = int(generations[-1].name[4:]) + 1 if generations else 1
        gen = ensure_private_dir(self.directory / f"gen-{number:04d}")
        write_private(gen / "key.pem", ca_lib.key_pem(key))
        write_private(gen / "cert.pem", answer.certificate_pem.encode())
        write_private(self.ca_path, answer.ca_pem.encode())
        info = answer.model_dump(exclude={"certificate_pem", "ca_pem"})
        write_private(self.info_path, json.dumps(info, indent=2).encode())
        link = self.directory / ".current.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(gen.name)
        link.replace(self.directory / "current")
        # Keep the previous generation (in-flight reconnects may still read it); drop older.
        for old in generations[:-1]:
            for f in old.iterdir():
                f.unlink()
            old.rmdir()


def client_ssl_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS client context with a client certificate, verifying the server against ``ca``."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


async def enrol(
    client: httpx.AsyncClient,
    request: EnrolmentRequest,
    identity: Identity,
    key: ec.EllipticCurvePrivateKey | None = None,
    path: str = "/api/v1/enrol",
) -> EnrolmentResponse:
    """First boot: send CSR + claim, install the certificate. ``client`` has the base URL."""
    key = key or ca_lib.new_key()
    body = request.model_copy(update={"csr_pem": new_csr(key, request.terminal_id).decode()})
    answer = await _post(client, path, body.model_dump())
    identity.install(key, answer)
    return answer


async def renew(
    client: httpx.AsyncClient,
    identity: Identity,
    now: dt.datetime,
    path: str = "/api/v1/enrol/renew",
) -> EnrolmentResponse:
    """Rotate key and certificate, proving possession of the current key."""
    old_key, old_cert = identity.key(), identity.cert_path.read_bytes()
    terminal_id = identity.info()["terminal_id"]
    key = ca_lib.new_key()
    csr = new_csr(key, terminal_id)
    signed_at = int(now.timestamp())
    signature = old_key.sign(
        renewal_message(terminal_id, csr, signed_at), ec.ECDSA(hashes.SHA256())
    )
    request = RenewalRequest(
        terminal_id=terminal_id,
        certificate_pem=old_cert.decode(),
        csr_pem=csr.decode(),
        signed_at=signed_at,
        signature=signature.hex(),
    )
    answer = await _post(client, path, request.model_dump())
    identity.install(key, answer)
    return answer


async def ensure_identity(
    client: httpx.AsyncClient, identity: Identity, claim: FactoryClaim, now: dt.datetime
) -> bool:
    """At agent start and then daily: enrol on first boot, renew when due.

    Returns True if a new certificate was installed (the agent's next reconnect uses it).
    """
    if not identity.exists():
        await enrol(client, claim.request(), identity)
        return True
    if renewal_due(identity.certificate(), now):
        await renew(client, identity, now)
        return True
    return False


def read_claim(path: Path) -> FactoryClaim:
    """The claim the factory wrote onto this terminal."""
    return FactoryClaim.model_validate_json(path.read_bytes())


def enrolment_client(claim: FactoryClaim) -> httpx.AsyncClient:
    """An HTTP client for the enrolment API that trusts only our root CA."""
    ctx = ssl.create_default_context(cadata=claim.ca_pem)
    return httpx.AsyncClient(base_url=claim.enrol_url, verify=ctx, timeout=30)


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> EnrolmentResponse:
    response = await client.post(path, json=body)
    if response.status_code in (400, 401, 403, 409, 422):
        detail = response.json().get("detail", {})
        reason = detail.get("reason", "refused") if isinstance(detail, dict) else "refused"
        error = ClaimRefused if response.status_code == 403 else EnrolmentRefused
        raise error(reason, str(detail))
    response.raise_for_status()
    return EnrolmentResponse.model_validate(response.json())
