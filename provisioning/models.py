"""tortoise-orm models of the provisioning registry (SQLite and PostgreSQL).

Add ``"provisioning.models"`` to the Tortoise config's model modules. Tables carry a
``prov_`` prefix; there are no foreign keys, so the models work under any app label.

* ``ProvClaim``       a claim batch: hashed secret, limits, scope
* ``ProvTerminal``    one enrolled terminal: region, model, status
* ``ProvCertificate`` every certificate ever issued (revocation needs all serials)
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from provisioning.claims import ClaimState

ACTIVE, REVOKED, DECOMMISSIONED = "active", "revoked", "decommissioned"


class ProvClaim(Model):
    id = fields.CharField(primary_key=True, max_length=32)
    secret_hash = fields.CharField(max_length=64)
    label = fields.CharField(max_length=128, default="")
    hardware_model = fields.CharField(max_length=64, null=True)
    #: "/"-joined region prefix; "" = anywhere.
    region_scope = fields.CharField(max_length=255, default="")
    id_prefix = fields.CharField(max_length=32, default="")
    max_uses = fields.IntField()
    uses = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "prov_claim"

    def state(self) -> ClaimState:
        return ClaimState(
            claim_id=self.id,
            secret_hash=self.secret_hash,
            expires_at=self.expires_at,
            max_uses=self.max_uses,
            uses=self.uses,
            revoked_at=self.revoked_at,
            hardware_model=self.hardware_model,
            region_scope=tuple(self.region_scope.split("/")) if self.region_scope else (),
            id_prefix=self.id_prefix,
        )


class ProvTerminal(Model):
    id = fields.CharField(primary_key=True, max_length=64)
    hardware_model = fields.CharField(max_length=64)
    province = fields.CharField(max_length=64)
    city = fields.CharField(max_length=64)
    county = fields.CharField(max_length=64)
    village = fields.CharField(max_length=64)
    claim_id = fields.CharField(max_length=32)
    status = fields.CharField(max_length=16, default=ACTIVE)
    enrolled_at = fields.DatetimeField()
    changed_at = fields.DatetimeField()

    class Meta:
        table = "prov_terminal"


class ProvCertificate(Model):
    #: Decimal serial (up to 159 bits, 48 digits).
    serial = fields.CharField(primary_key=True, max_length=50)
    terminal_id = fields.CharField(max_length=64, db_index=True)
    not_before = fields.DatetimeField()
    not_after = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "prov_certificate"
