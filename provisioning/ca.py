"""The certificate authority: a root and an issuing CA under the state folder.

Layout (created on first start, directory 0700, every file 0600)::

    <state>/ca/root.pem  root-key.pem        self-signed, 20 years, signs only the issuing CA
    <state>/ca/issuing.pem  issuing-key.pem  5 years, signs device, server, service certs + CRL

The root key is used once, at creation; a bank may move ``root-key.pem`` offline afterwards
(loading needs only the issuing key and both certificates). All keys are ECDSA P-256: TLS
handshakes with 10,000 terminals stay cheap on the broker and the terminals' small CPUs.

Certificate identities (mosquitto ``use_identity_as_username`` takes the subject CN):

* terminal: CN = terminal id (``[A-Za-z0-9][A-Za-z0-9_-]*``), extended key usage clientAuth;
* cloud service: CN = ``svc.<name>`` — the dot can never appear in a terminal id, so no
  terminal can be enrolled under a service's name;
* broker / API server: CN = first host name, SANs for every name and IP, serverAuth.

Time is an argument everywhere (``now``, timezone-aware).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from common.topics import valid_terminal_id
from provisioning.errors import EnrolmentRefused
from provisioning.files import ensure_private_dir, write_private

SERVICE_PREFIX = "svc."
ROOT_DAYS = 20 * 365
ISSUING_DAYS = 5 * 365
DEVICE_DAYS = 90
SERVER_DAYS = 365
#: Backdating absorbs clock skew between the cloud and a terminal's RTC.
BACKDATE = dt.timedelta(minutes=5)

Key = ec.EllipticCurvePrivateKey


def new_key() -> Key:
    """A fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def service_name(name: str) -> str:
    """The certificate CN (and so the broker username) of a cloud service."""
    if not valid_terminal_id(name):
        raise ValueError(f"invalid service name {name!r}")
    return SERVICE_PREFIX + name


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate fresh from the CA, with what a holder needs next to it."""

    cert: x509.Certificate
    chain_pem: bytes  # leaf + issuing CA, what a TLS peer presents
    serial: int


@dataclass(frozen=True)
class CertificateAuthority:
    """The loaded CA. Only ``issuing_key`` signs anything after creation."""

    directory: Path
    root: x509.Certificate
    issuing: x509.Certificate
    issuing_key: Key

    @property
    def root_pem(self) -> bytes:
        return cert_pem(self.root)

    @property
    def ca_bundle_pem(self) -> bytes:
        """Root + issuing: the broker's ``cafile`` (it builds chains from the store)."""
        return cert_pem(self.root) + cert_pem(self.issuing)

    def issue_device(
        self, csr_pem: bytes, terminal_id: str, now: dt.datetime, days: float = DEVICE_DAYS
    ) -> Issued:
        """Sign a terminal's CSR. The identity is ``terminal_id``; the CSR's subject is ignored."""
        if not valid_terminal_id(terminal_id):
            raise EnrolmentRefused("bad_terminal_id", terminal_id)
        public_key = public_key_of_csr(csr_pem)
        return self._issue(public_key, terminal_id, now, days, ExtendedKeyUsageOID.CLIENT_AUTH)

    def issue_service(
        self,
        public_key: ec.EllipticCurvePublicKey,
        name: str,
        now: dt.datetime,
        days: float = SERVER_DAYS,
    ) -> Issued:
        """A client certificate for a cloud service (broker username ``svc.<name>``)."""
        return self._issue(
            public_key, service_name(name), now, days, ExtendedKeyUsageOID.CLIENT_AUTH
        )

    def issue_server(
        self,
        public_key: ec.EllipticCurvePublicKey,
        hosts: Iterable[str],
        now: dt.datetime,
        days: float = SERVER_DAYS,
    ) -> Issued:
        """A server certificate (broker, enrolment API) for host names and IP addresses."""
        hosts = list(hosts)
        if not hosts:
            raise ValueError("a server certificate needs at least one host")
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        return self._issue(public_key, hosts[0], now, days, ExtendedKeyUsageOID.SERVER_AUTH, sans)

    def crl(
        self,
        revoked: Iterable[tuple[int, dt.datetime]],
        now: dt.datetime,
        next_update: dt.timedelta = dt.timedelta(days=7),
    ) -> bytes:
        """A PEM CRL of the issuing CA listing (serial, revoked_at) pairs.

        OpenSSL refuses *every* client once a CRL is past its next-update time, so the cloud
        must republish well before ``next_update`` (see ``revocation.CrlPublisher``).
        """
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.issuing.subject)
            .last_update(now - BACKDATE)
            .next_update(now + next_update)
        )
        for serial, when in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        crl = builder.sign(self.issuing_key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)

    def _issue(
        self,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        cn: str,
        now: dt.datetime,
        days: float,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
    ) -> Issued:
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.issuing.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_leaf_key_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issuing_key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.issuing_key, hashes.SHA256())
        return Issued(cert, cert_pem(cert) + cert_pem(self.issuing), serial)


def public_key_of_csr(csr_pem: bytes) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    """The CSR's public key after checking its self-signature (proof of key possession)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as err:
        raise EnrolmentRefused("bad_csr", "not a PEM certificate request") from err
    try:
        # Both parse the key: a point that is not on its curve is refused here, by name.
        key = csr.public_key()
        signed = csr.is_signature_valid
    except ValueError as err:
        raise EnrolmentRefused("bad_csr", f"CSR public key is invalid: {err}") from err
    if not signed:
        raise EnrolmentRefused("bad_csr", "CSR signature does not verify")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return key
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key
    raise EnrolmentRefused("bad_csr", "key must be ECDSA P-256/P-384 or RSA >= 2048")


def load_or_create(state_dir: Path, now: dt.datetime, org: str = "cuntong") -> CertificateAuthority:
    """Load the CA from ``<state_dir>/ca``, creating root and issuing CA on first start."""
    directory = state_dir / "ca"
    issuing_key_path = directory / "issuing-key.pem"
    if issuing_key_path.exists():
        key = serialization.load_pem_private_key(issuing_key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{issuing_key_path} is not an EC key")
        return CertificateAuthority(
            directory,
            x509.load_pem_x509_certificate((directory / "root.pem").read_bytes()),
            x509.load_pem_x509_certificate((directory / "issuing.pem").read_bytes()),
            key,
        )
    ensure_private_dir(directory)
    root_key, issuing_key = new_key(), new_key()
    root = _ca_cert(root_key, root_key.public_key(), None, f"{org} root CA", now, ROOT_DAYS, 1)
    issuing = _ca_cert(
        root_key, issuing_key.public_key(), root, f"{org} issuing CA", now, ISSUING_DAYS, 0
    )
    write_private(directory / "root-key.pem", key_pem(root_key))
    write_private(directory / "root.pem", cert_pem(root))
    write_private(directory / "issuing.pem", cert_pem(issuing))
    # The issuing key last: its presence is what marks the CA as complete.
    write_private(issuing_key_path, key_pem(issuing_key))
    return CertificateAuthority(directory, root, issuing, issuing_key)


def _ca_cert(
    signer: Key,
    public_key: ec.EllipticCurvePublicKey,
    parent: x509.Certificate | None,
    cn: str,
    now: dt.datetime,
    days: int,
    path_length: int,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.subject if parent else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    return builder.sign(signer, hashes.SHA256())


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
