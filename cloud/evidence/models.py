"""Database model: one row per archived session package (its index, not its content).

The customer's personal data sits in ``customer_sealed``, encrypted with the session's
evidence data key; the API decrypts it only to show the masked form or an audited reveal.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class EvidenceRecord(Model):
    session_id = fields.CharField(max_length=64, primary_key=True)
    business = fields.CharField(max_length=64, db_index=True)
    operator_id = fields.CharField(max_length=64, db_index=True)
    supervisor_id = fields.CharField(max_length=64, null=True)
    outcome = fields.CharField(max_length=16)
    package_dir = fields.CharField(max_length=512)
    chain_head = fields.CharField(max_length=64)
    customer_sealed = fields.BinaryField()
    created_at = fields.DatetimeField()
    retain_until = fields.DatetimeField(db_index=True)
    legal_hold = fields.BooleanField(default=False)
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "evidence_record"
