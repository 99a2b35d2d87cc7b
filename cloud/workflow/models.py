"""Database model: one teller session's workflow and its evidence timeline so far.

App label ``models``; ``cloud.db.MODEL_MODULES`` lists ``"cloud.workflow.models"``. The
``version`` column makes writes optimistic: two requests racing on one session cannot both
append a step (the loser gets 409 and retries against the new state).
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class WorkflowState(Model):
    session_id = fields.CharField(max_length=64, primary_key=True)
    business = fields.CharField(max_length=64)
    teller_id = fields.CharField(max_length=64, db_index=True)
    started_at = fields.DatetimeField()
    records: fields.Field[list[dict[str, Any]]] = fields.JSONField(default=list)
    events: fields.Field[list[dict[str, Any]]] = fields.JSONField(default=list)
    outcome = fields.CharField(max_length=16, null=True)
    ended_at = fields.DatetimeField(null=True)
    version = fields.IntField(default=0)

    class Meta:
        table = "workflow_state"
