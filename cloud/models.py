"""Database models of the spine: terminals and their business events.

Works on SQLite (default) and PostgreSQL. Other packages (provisioning, fleet, sessions) add
their own model modules; ``cloud.db.MODEL_MODULES`` lists them all.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Terminal(Model):
    id = fields.CharField(max_length=64, primary_key=True)
    province = fields.CharField(max_length=32, default="", db_index=True)
    city = fields.CharField(max_length=32, default="", db_index=True)
    county = fields.CharField(max_length=32, default="", db_index=True)
    village = fields.CharField(max_length=64, default="")
    hw_model = fields.CharField(max_length=32, default="")
    agent_version = fields.CharField(max_length=32, default="", db_index=True)
    versions = fields.JSONField(default=dict)
    online = fields.BooleanField(default=False, db_index=True)
    status_changed_at = fields.DatetimeField(null=True)
    last_seen_at = fields.DatetimeField(null=True)
    #: The latest telemetry body (metrics, peripherals) as the terminal sent it.
    health = fields.JSONField(default=dict)
    health_at = fields.DatetimeField(null=True)
    telemetry_seq = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "terminal"


class TerminalEvent(Model):
    id = fields.BigIntField(primary_key=True)
    terminal = fields.ForeignKeyField("models.Terminal", related_name="events")
    seq = fields.BigIntField()
    ts = fields.DatetimeField()
    type = fields.CharField(max_length=64)
    data = fields.JSONField(default=dict)
    received_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "terminal_event"
        # The de-duplication key: a spool replay or QoS 1 redelivery inserts nothing.
        unique_together = (("terminal", "seq"),)


class LeaderLease(Model):
    """Which API replica runs the cloud's singletons (``cloud.lease``): one row per lease.

    ``expires_at`` is in seconds since the epoch on the database's clock (never a replica's:
    replicas on different hosts disagree); ``epoch`` is the fencing token, bumped at every
    change of hands, which a leader's writes check."""

    name = fields.CharField(max_length=64, primary_key=True)
    holder = fields.CharField(max_length=128, default="")
    epoch = fields.BigIntField(default=0)
    expires_at = fields.FloatField(default=0.0)

    class Meta:
        table = "leader_lease"
