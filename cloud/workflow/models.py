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


class CorePostingRow(Model):
    """A business outcome posted (or being posted) to the bank's core.

    Written as ``pending`` *before* the post is sent, so a process killed while waiting
    for the answer leaves the key behind for the reconciler (``cloud.workflow.corepost``).
    ``body`` is the exact posting: a re-post under the same key must carry the same content.
    """

    session_id = fields.CharField(max_length=64, primary_key=True)
    business = fields.CharField(max_length=64)
    idem_key = fields.CharField(max_length=80, unique=True)
    body: fields.Field[dict[str, Any]] = fields.JSONField()
    #: pending (sent, no answer yet), applied (the core confirmed), refused (the core said no)
    status = fields.CharField(max_length=16, db_index=True)
    reference = fields.CharField(max_length=32, null=True)
    reason = fields.CharField(max_length=64, null=True)
    detail = fields.CharField(max_length=256, null=True)
    created_at = fields.DatetimeField()
    settled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "core_posting"
