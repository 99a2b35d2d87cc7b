"""Database models of fleet operations: tags, groups, shadows and commands.

Terminals themselves are ``cloud.models.Terminal`` (kept by ingest); these tables hang off
its id. Works on SQLite and PostgreSQL.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class TerminalTags(Model):
    """Free tags an operator puts on a terminal ("pilot", "market-day", ...)."""

    terminal_id = fields.CharField(max_length=64, primary_key=True)
    tags = fields.JSONField(default=list)

    class Meta:
        table = "fleet_terminal_tags"


class Group(Model):
    """A static list of terminals, or a saved query (a ``fleet.query.Selector`` dict)."""

    name = fields.CharField(max_length=64, primary_key=True)
    kind = fields.CharField(max_length=8)  # "static" | "query"
    selector = fields.JSONField(default=dict)
    members = fields.JSONField(default=list)
    description = fields.CharField(max_length=256, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "fleet_group"


class ShadowDoc(Model):
    terminal_id = fields.CharField(max_length=64, primary_key=True)
    desired = fields.JSONField(default=dict)
    desired_version = fields.IntField(default=0)
    reported = fields.JSONField(default=dict)
    reported_version = fields.IntField(default=0)
    desired_at = fields.DatetimeField(null=True)
    reported_at = fields.DatetimeField(null=True)

    class Meta:
        table = "fleet_shadow"


class FleetCommand(Model):
    """One command to one terminal and its recorded outcome (``fleet.lifecycle``)."""

    id = fields.CharField(max_length=32, primary_key=True)
    terminal_id = fields.CharField(max_length=64, db_index=True)
    name = fields.CharField(max_length=32)
    args = fields.JSONField(default=dict)
    state = fields.CharField(max_length=12, db_index=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    timeout_s = fields.FloatField()
    sent_at = fields.DatetimeField(null=True)
    #: When the current wait ends (reply timeout once sent, else expiry): one indexed sweep.
    deadline_at = fields.DatetimeField(db_index=True)
    finished_at = fields.DatetimeField(null=True)
    result = fields.JSONField(null=True)
    #: Set when the command belongs to a broadcast or a rollout.
    batch = fields.CharField(max_length=32, null=True, db_index=True)

    class Meta:
        table = "fleet_command"


class RolloutDoc(Model):
    """A job run as a staged rollout over a group (``fleet.rollout``)."""

    id = fields.CharField(max_length=16, primary_key=True)
    name = fields.CharField(max_length=128)
    group = fields.CharField(max_length=64)
    action = fields.CharField(max_length=32)
    args = fields.JSONField(default=dict)
    rollback_action = fields.CharField(max_length=32, null=True)
    rollback_args = fields.JSONField(default=dict)
    plan = fields.JSONField(default=dict)
    phase = fields.CharField(max_length=16, db_index=True)
    wave = fields.IntField(default=0)
    waves = fields.IntField(default=1)
    reason = fields.CharField(max_length=256, default="")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "fleet_rollout"


class RolloutTarget(Model):
    id = fields.BigIntField(primary_key=True)
    rollout_id = fields.CharField(max_length=16, db_index=True)
    terminal_id = fields.CharField(max_length=64)
    wave = fields.IntField()
    state = fields.CharField(max_length=16)
    started_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "fleet_rollout_target"
        unique_together = (("rollout_id", "terminal_id"),)


class AlertDoc(Model):
    """One alert: opened once per condition, touched while it lasts, cleared when it ends."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=24, db_index=True)
    terminal_id = fields.CharField(max_length=64, db_index=True)
    subject = fields.CharField(max_length=64, default="")
    severity = fields.CharField(max_length=12)
    message = fields.CharField(max_length=256)
    state = fields.CharField(max_length=8, db_index=True)  # open | acked | cleared
    first_at = fields.DatetimeField()
    last_at = fields.DatetimeField()
    count = fields.IntField(default=1)
    acked_at = fields.DatetimeField(null=True)
    acked_by = fields.CharField(max_length=64, default="")
    cleared_at = fields.DatetimeField(null=True)

    class Meta:
        table = "fleet_alert"
