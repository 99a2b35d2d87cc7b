"""Database models: accounts, login sessions and the append-only audit log.

App label ``models``; ``cloud.db.MODEL_MODULES`` lists ``"cloud.auth.models"``.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

from cloud.auth.errors import AuditLogImmutable


class Account(Model):
    id = fields.CharField(max_length=64, primary_key=True)  # login name; = teller id for tellers
    display_name = fields.CharField(max_length=64, default="")
    roles: fields.Field[list[str]] = fields.JSONField(default=list)
    password_hash = fields.CharField(max_length=255)
    disabled = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()

    class Meta:
        table = "account"


class LoginSession(Model):
    #: SHA-256 (hex) of the bearer token; the token itself is never stored.
    token_sha256 = fields.CharField(max_length=64, primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="login_sessions"
    )
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)
    revoked = fields.BooleanField(default=False)

    class Meta:
        table = "login_session"


class AuditEntry(Model):
    """Who saw or changed what. Rows are only ever inserted (save/delete refuse otherwise)."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    actor = fields.CharField(max_length=64, db_index=True)
    action = fields.CharField(max_length=64)
    target = fields.CharField(max_length=255, default="")
    detail: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_entry"

    async def save(self, *args: Any, **kwargs: Any) -> None:
        if self._saved_in_db:
            raise AuditLogImmutable("audit entries cannot be changed")
        await super().save(*args, **kwargs)

    async def delete(self, *args: Any, **kwargs: Any) -> None:
        raise AuditLogImmutable("audit entries cannot be deleted")
