"""Database models of quality inspection (质检): the review queue and reviewers' scores.

App label ``models``; ``cloud.db.MODEL_MODULES`` lists ``"cloud.quality.models"``.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class ReviewItem(Model):
    session_id = fields.CharField(max_length=64, primary_key=True)
    business = fields.CharField(max_length=64)
    teller_id = fields.CharField(max_length=64, db_index=True)
    #: "low_liveness" (full review), "new_business", "sampled"
    reason = fields.CharField(max_length=32)
    queued_at = fields.DatetimeField(db_index=True)
    reviewer_id = fields.CharField(max_length=64, null=True)
    reviewed_at = fields.DatetimeField(null=True)
    #: checklist item -> points awarded
    scores: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    total = fields.FloatField(null=True)
    passed = fields.BooleanField(null=True)
    comment = fields.TextField(default="")

    class Meta:
        table = "quality_review"
