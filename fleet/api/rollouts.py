"""/api/v1/fleet/rollouts: jobs over a group as staged rollouts; progress; pause, resume, cancel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from cloud import audit
from common.http import RolloutIdPath, StateQuery
from fleet import registry, rollouts
from fleet import rollout as ro
from fleet.api.deps import Operator, PackagesOrNone, Readers, RolloutsOrNone, Who, audited, now
from fleet.api.packages import complete_args
from fleet.models import RolloutDoc, RolloutTarget

RateName = Literal["manual_review_rate", "overturn_rate", "pass_rate"]
_RATES: tuple[RateName, ...] = ("manual_review_rate", "overturn_rate", "pass_rate")
assert _RATES == ro.RATES

router = APIRouter(prefix="/fleet/rollouts", tags=["fleet rollouts"], dependencies=Readers)


class PlanIn(BaseModel):
    canary: int = Field(default=1, ge=0)
    wave_size: int = Field(default=100, ge=1)
    max_per_minute: int = Field(default=1000, ge=1)
    window: str | None = Field(
        default=None, description="local maintenance window, e.g. 22:00-06:00"
    )
    utc_offset_min: int = Field(default=480, ge=-720, le=840)
    abort_failure_pct: float = Field(default=10, ge=0, le=100)
    abort_timeout_pct: float = Field(default=10, ge=0, le=100)
    min_finished: int = Field(default=10, ge=1)
    rollback: bool = True
    #: Business threshold: abort when the targets' liveness manual-review rate exceeds the
    #: control group's by more than this many percentage points.
    abort_review_points: float | None = Field(default=None, ge=0, le=100)
    control_group: str | None = None
    min_sessions: int = Field(default=20, ge=1)
    #: Significance guard: abort when a liveness rate of the targets differs from the
    #: control group's at this family-wise level, over the rollout's whole life by default
    #: (``abort_test``: "always-valid"; "fisher-per-look" is Fisher's exact test at every
    #: beat, without sequential correction).
    abort_alpha: float | None = Field(default=None, gt=0, lt=1)
    abort_rates: list[RateName] = Field(default_factory=lambda: list(_RATES), min_length=1)
    abort_alternative: Literal["two-sided", "worse"] = "two-sided"
    abort_test: Literal["always-valid", "fisher-per-look"] = "always-valid"


class RolloutIn(BaseModel):
    name: str = Field(max_length=128)
    group: str
    action: str = "ota_install"
    args: dict[str, Any] = {}
    rollback_action: str | None = "ota_rollback"
    rollback_args: dict[str, Any] = {}
    plan: PlanIn = PlanIn()


async def _doc(rollout_id: RolloutIdPath) -> RolloutDoc:
    doc = await RolloutDoc.get_or_none(id=rollout_id)
    if doc is None:
        raise HTTPException(404, f"rollout {rollout_id!r} not found")
    return doc


async def _progress(
    doc: RolloutDoc, guards: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``guards``: the business guard's abort records (rate, counts, p-values) by rollout,
    if already read."""
    if guards is None:
        guards = await audit.latest(rollouts.GUARD_ABORT, [doc.id])
    rows = await RolloutTarget.filter(rollout_id=doc.id).values_list("wave", "state")
    waves: list[dict[str, int]] = [{} for _ in range(doc.waves)]
    total: dict[str, int] = {}
    for wave, state in rows:
        waves[wave][state] = waves[wave].get(state, 0) + 1
        total[state] = total.get(state, 0) + 1
    return {
        "id": doc.id,
        "name": doc.name,
        "group": doc.group,
        "action": doc.action,
        "args": doc.args,
        "phase": doc.phase,
        "reason": doc.reason,
        "wave": doc.wave,
        "waves": [{"wave": i, "states": w, "total": sum(w.values())} for i, w in enumerate(waves)],
        "states": total,
        "total": len(rows),
        "plan": doc.plan,
        "guard_abort": guards.get(doc.id),
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
    }


@router.post("", status_code=201, dependencies=Operator)
async def create(
    body: RolloutIn, packages: PackagesOrNone, request: Request, who: Who
) -> dict[str, Any]:
    args = complete_args(packages, str(request.base_url), body.action, body.args)
    rollback_args = dict(body.rollback_args)
    if body.rollback_action == "ota_rollback" and "component" in args:
        rollback_args.setdefault("component", args["component"])
    try:
        plan = ro.Plan.from_dict(body.plan.model_dump())
        doc = await rollouts.create(
            body.name,
            body.group,
            body.action,
            args,
            plan,
            now(),
            body.rollback_action,
            rollback_args,
        )
    except registry.GroupNotFound as err:
        raise HTTPException(404, f"group {body.group!r} not found") from err
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    await audited(who, "fleet_rollout_create", doc.id, group=body.group, command=body.action)
    return await _progress(doc)


@router.get("")
async def list_rollouts(limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[dict[str, Any]]:
    docs = await RolloutDoc.all().order_by("-created_at").limit(limit)
    guards = await audit.latest(rollouts.GUARD_ABORT, [d.id for d in docs])
    return [await _progress(d, guards) for d in docs]


@router.get("/{rollout_id}")
async def get_rollout(rollout_id: RolloutIdPath) -> dict[str, Any]:
    return await _progress(await _doc(rollout_id))


@router.get("/{rollout_id}/targets")
async def targets(
    rollout_id: RolloutIdPath,
    state: StateQuery = None,
    wave: int | None = None,
    updated_since: Annotated[
        datetime | None, Query(description="only targets changed at or after this time")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
) -> list[dict[str, Any]]:
    query = RolloutTarget.filter(rollout_id=(await _doc(rollout_id)).id)
    if updated_since is not None:
        query = query.filter(updated_at__gte=updated_since)
    if state:
        query = query.filter(state=state)
    if wave is not None:
        query = query.filter(wave=wave)
    # Plain values: a dashboard polls up to ten thousand rows during a rollout.
    return await (
        query.order_by("wave", "terminal_id")
        .limit(limit)
        .values("terminal_id", "wave", "state", "started_at", "updated_at")
    )


_OPS: dict[str, Callable[[ro.Rollout], ro.Rollout]] = {
    "pause": ro.pause,
    "resume": ro.resume,
    "cancel": ro.cancel,
}


@router.post("/{rollout_id}/{op}", dependencies=Operator)
async def operate(
    rollout_id: RolloutIdPath,
    op: Literal["pause", "resume", "cancel"],
    engine: RolloutsOrNone,
    who: Who,
) -> dict[str, Any]:
    doc = await _doc(rollout_id)
    if engine is None:
        raise HTTPException(503, "the rollout engine is not running")
    async with engine.lock:  # not between a beat's read and its write
        await doc.refresh_from_db()
        before = await rollouts.load(doc)
        try:
            after = _OPS[op](before)
        except ValueError as err:
            raise HTTPException(409, str(err)) from err
        await rollouts.save(doc, before, after, now())
    await audited(who, f"fleet_rollout_{op}", doc.id)
    return await _progress(doc)
