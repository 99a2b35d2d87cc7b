"""Quality-inspection routes: the reviewer's queue and the scoring form."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from cloud.api.deps import OversightDep, require
from cloud.auth import audit
from cloud.auth.deps import Principal
from cloud.auth.roles import Role
from cloud.quality import rules, service
from cloud.quality.models import ReviewItem
from common.http import SessionIdPath

router = APIRouter(prefix="/quality", tags=["quality"])
Reviewer = Annotated[Principal, Depends(require(Role.REVIEWER))]


class ItemPublic(BaseModel):
    session_id: str
    business: str
    teller_id: str
    reason: str
    queued_at: dt.datetime
    reviewer_id: str | None
    reviewed_at: dt.datetime | None
    total: float | None
    passed: bool | None


class ScoreRequest(BaseModel):
    points: dict[str, int]
    comment: str = ""


@router.get("/checklist")
async def checklist(_: Reviewer) -> dict[str, dict[str, object]]:
    return {
        k: {"label": i.label, "points": i.points, "critical": i.critical}
        for k, i in rules.CHECKLIST.items()
    }


@router.get("/queue", response_model=list[ItemPublic])
async def queue(
    _: Annotated[Principal, Depends(require(Role.REVIEWER, Role.SUPERVISOR))],
) -> list[ReviewItem]:
    """Open items, full reviews (low liveness) first, then oldest first."""
    items = await ReviewItem.filter(reviewed_at__isnull=True).order_by("queued_at")
    return sorted(items, key=lambda i: i.reason != "low_liveness")


@router.post("/{session_id}/score", response_model=ItemPublic)
async def submit_score(
    session_id: SessionIdPath, body: ScoreRequest, ov: OversightDep, who: Reviewer
) -> ReviewItem:
    if await ReviewItem.get_or_none(session_id=session_id) is None:
        raise HTTPException(404, "not in the review queue")
    try:
        item = await service.submit(
            session_id, who.account_id, body.points, body.comment, ov.clock()
        )
    except service.ReviewConflict as err:
        raise HTTPException(409, str(err)) from err
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    await audit.record(
        who.account_id,
        "quality_review",
        session_id,
        ov.clock(),
        total=item.total,
        passed=item.passed,
    )
    return item
