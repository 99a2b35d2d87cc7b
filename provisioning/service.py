"""Provisioning operations on the registry: claims, enrolment, renewal, revocation.

``Provisioner`` is what both the HTTP router (``provisioning.api``) and the CLI
(``provisioning.cli``) call. It needs Tortoise initialised with ``provisioning.models``.
Revocations call ``on_revoked`` (normally ``revocation.RevocationPublisher``), which
republishes the CRL, reloads the broker and disconnects the terminal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from common.suite import Suite
from provisioning import claims
from provisioning.ca import CertificateAuthority, Issued
from provisioning.errors import ClaimRefused, EnrolmentRefused
from provisioning.keys import CloudKeys
from provisioning.models import (
    ACTIVE,
    DECOMMISSIONED,
    REVOKED,
    ProvCertificate,
    ProvClaim,
    ProvTerminal,
)
from provisioning.protocol import (
    BrokerAddress,
    EnrolmentRequest,
    EnrolmentResponse,
    RenewalRequest,
    renewal_message,
)

#: A renewal request signed further than this from the cloud's clock is refused.
RENEWAL_SKEW = dt.timedelta(minutes=5)

OnRevoked = Callable[[Sequence[str], dt.datetime], Awaitable[None]]
#: Called with the ids of newly enrolled terminals (normally ``dynsec.BrokerAdmin``'s
#: ``enrolled``, which gives each its broker client and role).
OnEnrolled = Callable[[Sequence[str], dt.datetime], Awaitable[None]]


def _no_config(terminal: ProvTerminal) -> dict[str, Any]:
    return {}


@dataclass
class Provisioner:
    ca: CertificateAuthority
    keys: CloudKeys
    broker: BrokerAddress
    suite: Suite = Suite.STANDARD
    cert_days: int = 90
    #: The initial configuration handed to a terminal at enrolment and renewal.
    config_for: Callable[[ProvTerminal], dict[str, Any]] = field(default=_no_config)
    on_revoked: OnRevoked | None = None
    on_enrolled: OnEnrolled | None = None

    # -- claims -------------------------------------------------------------------------

    async def create_claim(
        self,
        now: dt.datetime,
        *,
        max_uses: int,
        valid_for: dt.timedelta,
        hardware_model: str | None = None,
        region_scope: Sequence[str] = (),
        id_prefix: str = "",
        label: str = "",
    ) -> tuple[ProvClaim, str]:
        """A new claim and its token (shown once; the cloud keeps only a hash)."""
        if max_uses < 1:
            raise ValueError("max_uses must be at least 1")
        token = claims.new_token()
        claim = await ProvClaim.create(
            id=token.claim_id,
            secret_hash=token.secret_hash,
            label=label,
            hardware_model=hardware_model,
            region_scope="/".join(region_scope),
            id_prefix=id_prefix,
            max_uses=max_uses,
            created_at=now,
            expires_at=now + valid_for,
        )
        return claim, token.token

    async def revoke_claim(self, claim_id: str, now: dt.datetime) -> bool:
        return bool(await ProvClaim.filter(id=claim_id, revoked_at=None).update(revoked_at=now))

    # -- enrolment and renewal ----------------------------------------------------------

    async def enrol(self, request: EnrolmentRequest, now: dt.datetime) -> EnrolmentResponse:
        claim_id, secret = claims.parse_token(request.claim_token)
        claim = await ProvClaim.get_or_none(id=claim_id)
        if claim is None:
            raise ClaimRefused("unknown_claim")
        region = (
            request.region.province,
            request.region.city,
            request.region.county,
            request.region.village,
        )
        claims.check(
            claim.state(), secret, now, request.hardware_model, region, request.terminal_id
        )
        existing = await ProvTerminal.get_or_none(id=request.terminal_id)
        if existing is not None and existing.status != DECOMMISSIONED:
            # Rotation is by renewal; a claim never re-issues a live or revoked identity.
            raise EnrolmentRefused("terminal_exists", request.terminal_id)
        issued = self.ca.issue_device(
            request.csr_pem.encode(), request.terminal_id, now, self.cert_days
        )
        try:
            terminal = await self._register(request, existing, claim_id, region, issued, now)
        except IntegrityError as err:  # a concurrent enrolment registered the same id
            raise EnrolmentRefused("terminal_exists", request.terminal_id) from err
        if self.on_enrolled is not None:
            await self.on_enrolled([terminal.id], now)
        return self._answer(terminal, issued)

    async def _register(
        self,
        request: EnrolmentRequest,
        existing: ProvTerminal | None,
        claim_id: str,
        region: tuple[str, str, str, str],
        issued: Issued,
        now: dt.datetime,
    ) -> ProvTerminal:
        async with in_transaction():
            taken = await ProvClaim.filter(
                id=claim_id, uses__lt=F("max_uses"), revoked_at=None
            ).update(uses=F("uses") + 1)
            if not taken:  # a concurrent enrolment took the last use
                raise ClaimRefused("exhausted", claim_id)
            values: dict[str, Any] = {
                "hardware_model": request.hardware_model,
                "province": region[0],
                "city": region[1],
                "county": region[2],
                "village": region[3],
                "claim_id": claim_id,
                "status": ACTIVE,
                "enrolled_at": now,
                "changed_at": now,
            }
            if existing is None:
                terminal = await ProvTerminal.create(id=request.terminal_id, **values)
            else:
                await existing.update_from_dict(values).save()
                terminal = existing
            await _record(issued, request.terminal_id)
        return terminal

    async def renew(self, request: RenewalRequest, now: dt.datetime) -> EnrolmentResponse:
        """Issue a new certificate to a terminal that proves it holds its current key."""
        try:
            current = x509.load_pem_x509_certificate(request.certificate_pem.encode())
            current.verify_directly_issued_by(self.ca.issuing)
        except (ValueError, TypeError, InvalidSignature) as err:
            raise EnrolmentRefused("bad_certificate", str(err)) from err
        cn = current.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        if not cn or cn[0].value != request.terminal_id:
            raise EnrolmentRefused("bad_certificate", "certificate is for another identity")
        if not current.not_valid_before_utc <= now < current.not_valid_after_utc:
            raise EnrolmentRefused("certificate_expired", "enrol again with a claim")
        if abs(now - dt.datetime.fromtimestamp(request.signed_at, dt.UTC)) > RENEWAL_SKEW:
            raise EnrolmentRefused("stale_request", "signed_at too far from now")
        public_key = current.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise EnrolmentRefused("bad_certificate", "not an EC certificate")
        message = renewal_message(request.terminal_id, request.csr_pem.encode(), request.signed_at)
        try:
            public_key.verify(bytes.fromhex(request.signature), message, ec.ECDSA(hashes.SHA256()))
        except (ValueError, InvalidSignature) as err:
            raise EnrolmentRefused("bad_signature", "proof of possession failed") from err
        record = await ProvCertificate.get_or_none(serial=str(current.serial_number))
        terminal = await ProvTerminal.get_or_none(id=request.terminal_id)
        if record is None or record.revoked_at is not None or terminal is None:
            raise EnrolmentRefused("revoked", request.terminal_id)
        if terminal.status != ACTIVE:
            raise EnrolmentRefused(terminal.status, request.terminal_id)
        issued = self.ca.issue_device(
            request.csr_pem.encode(), request.terminal_id, now, self.cert_days
        )
        await _record(issued, request.terminal_id)
        return self._answer(terminal, issued)

    def _answer(self, terminal: ProvTerminal, issued: Issued) -> EnrolmentResponse:
        return EnrolmentResponse(
            terminal_id=terminal.id,
            certificate_pem=issued.chain_pem.decode(),
            ca_pem=self.ca.root_pem.decode(),
            not_after=issued.cert.not_valid_after_utc.isoformat(),
            broker=self.broker,
            config=self.config_for(terminal),
            suite=self.suite.value,
            command_key_pem=self.keys.command_public_pem.decode(),
            event_mac_key=self.keys.event_mac_key(self.suite, terminal.id).hex(),
        )

    # -- revocation ---------------------------------------------------------------------

    async def revoke_terminal(
        self, terminal_id: str, now: dt.datetime, status: str = REVOKED
    ) -> int:
        """Revoke every certificate of the terminal; returns how many were revoked."""
        terminal = await ProvTerminal.get_or_none(id=terminal_id)
        if terminal is None:
            raise EnrolmentRefused("unknown_terminal", terminal_id)
        async with in_transaction():
            count = await ProvCertificate.filter(terminal_id=terminal_id, revoked_at=None).update(
                revoked_at=now
            )
            terminal.status = status
            terminal.changed_at = now
            await terminal.save()
        if self.on_revoked is not None:
            await self.on_revoked([terminal_id], now)
        return count

    async def decommission(self, terminal_id: str, now: dt.datetime) -> int:
        """Take a terminal out of service: revoked, and its id free for a later enrolment."""
        return await self.revoke_terminal(terminal_id, now, status=DECOMMISSIONED)


async def broker_roster() -> tuple[list[str], list[str]]:
    """(active, removed) terminal ids: who must and who must not have broker rights."""
    rows = await ProvTerminal.all().values_list("id", "status")
    active = [tid for tid, status in rows if status == ACTIVE]
    return active, [tid for tid, status in rows if status != ACTIVE]


async def revoked_serials(now: dt.datetime) -> list[tuple[int, dt.datetime]]:
    """(serial, revoked_at) of revoked certificates that have not expired yet (the CRL)."""
    rows = await ProvCertificate.filter(revoked_at__not_isnull=True, not_after__gt=now)
    return [(int(r.serial), r.revoked_at) for r in rows if r.revoked_at is not None]


async def _record(issued: Issued, terminal_id: str) -> None:
    await ProvCertificate.create(
        serial=str(issued.serial),
        terminal_id=terminal_id,
        not_before=issued.cert.not_valid_before_utc,
        not_after=issued.cert.not_valid_after_utc,
    )
