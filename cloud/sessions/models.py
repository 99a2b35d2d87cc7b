"""Database models of teller sessions: tellers, sessions, and every state transition.

App label ``models`` (as ``cloud.db`` configures it); add ``"cloud.sessions.models"`` to
``cloud.db.MODEL_MODULES``. A session row holds the latest state and the facts routing
needed; ``SessionTransition`` rows are the audit trail, enough to ``state.replay`` it.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class TellerProfile(Model):
    id = fields.CharField(max_length=64, primary_key=True)
    name = fields.CharField(max_length=64, default="")
    #: business type -> proficiency 1-5 (see cloud.sessions.skills.BUSINESSES)
    businesses: fields.Field[dict[str, int]] = fields.JSONField(default=dict)
    #: language codes (see cloud.sessions.skills.LANGUAGES)
    languages: fields.Field[list[str]] = fields.JSONField(default=list)
    #: SHA-256 (hex) of the teller's API token; the token itself is never stored.
    token_sha256 = fields.CharField(max_length=64, null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "teller_profile"


class TellerSession(Model):
    id = fields.CharField(max_length=64, primary_key=True)
    terminal_id = fields.CharField(max_length=64, db_index=True)
    business = fields.CharField(max_length=32)
    language = fields.CharField(max_length=16)
    elderly = fields.BooleanField(default=False)
    state = fields.CharField(max_length=16, db_index=True)
    teller_id = fields.CharField(max_length=64, null=True, db_index=True)
    janus_node = fields.CharField(max_length=64, null=True)
    requested_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    recording_path = fields.CharField(max_length=512, null=True)
    recording_sha256 = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "teller_session"


class SessionTransition(Model):
    id = fields.BigIntField(primary_key=True)
    session: fields.ForeignKeyRelation[TellerSession] = fields.ForeignKeyField(
        "models.TellerSession", related_name="transitions"
    )
    at = fields.DatetimeField(db_index=True)
    event = fields.CharField(max_length=16)
    from_state = fields.CharField(max_length=16, null=True)
    to_state = fields.CharField(max_length=16)
    cause = fields.CharField(max_length=255, default="")
    teller_id = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "teller_session_transition"
