"""The review queue: enqueue finished sessions, reviewers claim and score them."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping

from cloud.catalogue import Catalogue
from cloud.quality import rules
from cloud.quality.models import ReviewItem
from common.errors import CuntongError


async def consider(
    catalogue: Catalogue,
    *,
    session_id: str,
    business: str,
    teller_id: str,
    liveness_score: float | None,
    closed_at: dt.datetime,
    salt: bytes,
    overridden: bool = False,
) -> ReviewItem | None:
    """Called when a session ends: queue it for review if the rules select it."""
    reason = rules.review_reason(
        catalogue, business, session_id, liveness_score, closed_at, salt, overridden
    )
    if reason is None:
        return None
    item = ReviewItem(
        session_id=session_id,
        business=business,
        teller_id=teller_id,
        reason=reason,
        queued_at=closed_at,
    )
    # One idempotent statement (INSERT … ON CONFLICT DO NOTHING), not get_or_create's
    # transaction of two: finish queues the session inside the transaction that closes it.
    await ReviewItem.bulk_create([item], ignore_conflicts=True)
    return item


class QualityError(CuntongError):
    """Root of the quality-review errors."""


class ReviewConflict(QualityError, ValueError):
    """The item is claimed by someone else, already scored, or the reviewer served it."""


async def submit(
    session_id: str, reviewer_id: str, points: Mapping[str, int], comment: str, now: dt.datetime
) -> ReviewItem:
    item = await ReviewItem.get(session_id=session_id)
    if item.teller_id == reviewer_id:
        raise ReviewConflict("nobody reviews a session they served")
    if item.reviewed_at is not None:
        raise ReviewConflict("already reviewed")
    result = rules.score(points)
    item.reviewer_id = reviewer_id
    item.reviewed_at = now
    item.scores = dict(points)
    item.total = result.total
    item.passed = result.passed
    item.comment = comment
    await item.save()
    return item


async def quality_by_teller(since: dt.datetime, until: dt.datetime) -> dict[str, list[float]]:
    """Scores of reviewed sessions per teller — the ``quality`` input of the teller KPIs."""
    out: dict[str, list[float]] = defaultdict(list)
    rows = await ReviewItem.filter(
        reviewed_at__gte=since, reviewed_at__lt=until, total__isnull=False
    ).values_list("teller_id", "total")
    for teller, total in rows:
        out[teller].append(total)
    return dict(out)
