"""/api/v1/terminals: the fleet's terminals, one terminal's health, its telemetry history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from cloud.api.deps import Reader, require
from cloud.api.schemas import (
    EventOut,
    Presence,
    Region,
    SeriesOut,
    TelemetryOut,
    TerminalDetail,
    TerminalPage,
    TerminalSummary,
)
from cloud.auth import roles
from cloud.models import Terminal, TerminalEvent
from common.envelope import TELEMETRY_FIELDS
from common.http import Page, TerminalIdPath

FLEET_READERS = roles.FLEET_READERS

router = APIRouter(
    prefix="/terminals",
    tags=["terminals"],
    dependencies=[Depends(require(*FLEET_READERS))],
)

MAX_POINTS = 11_000  # the store's own cap per series and query


def _summary(t: Terminal) -> dict[str, object]:
    return {
        "id": t.id,
        "status": Presence.ONLINE if t.online else Presence.OFFLINE,
        "region": Region(province=t.province, city=t.city, county=t.county, village=t.village),
        "hw_model": t.hw_model,
        "agent_version": t.agent_version,
        "last_seen_at": t.last_seen_at,
    }


async def _get(terminal_id: TerminalIdPath) -> Terminal:
    terminal = await Terminal.get_or_none(id=terminal_id)
    if terminal is None:
        raise HTTPException(404, f"terminal {terminal_id!r} not found")
    return terminal


@router.get("", response_model=TerminalPage)
async def list_terminals(
    status: Presence | None = None,
    province: str | None = None,
    city: str | None = None,
    county: str | None = None,
    version: Annotated[str | None, Query(description="agent version")] = None,
    q: Annotated[str | None, Query(max_length=64, description="terminal id prefix")] = None,
    page: Page = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> TerminalPage:
    query = Terminal.all()
    if status is not None:
        query = query.filter(online=status is Presence.ONLINE)
    for field, value in (("province", province), ("city", city), ("county", county)):
        if value:
            query = query.filter(**{field: value})
    if version:
        query = query.filter(agent_version=version)
    if q:
        query = query.filter(id__startswith=q)
    total = await query.count()
    rows = await query.order_by("id").offset((page - 1) * page_size).limit(page_size)
    return TerminalPage(
        items=[TerminalSummary.model_validate(_summary(t)) for t in rows],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.get("/{terminal_id}", response_model=TerminalDetail)
async def get_terminal(terminal_id: TerminalIdPath) -> TerminalDetail:
    t = await _get(terminal_id)
    return TerminalDetail.model_validate(
        _summary(t)
        | {
            "versions": t.versions,
            "status_changed_at": t.status_changed_at,
            "health": t.health,
            "health_at": t.health_at,
            "created_at": t.created_at,
        }
    )


@router.get("/{terminal_id}/telemetry", response_model=TelemetryOut)
async def telemetry(
    terminal_id: TerminalIdPath,
    reader: Reader,
    metric: Annotated[list[str] | None, Query(description="metrics; default all")] = None,
    minutes: Annotated[int, Query(ge=1, le=60 * 24 * 90)] = 60,
    step_s: Annotated[int | None, Query(ge=1, le=86_400)] = None,
) -> TelemetryOut:
    await _get(terminal_id)
    metrics = metric or sorted(TELEMETRY_FIELDS)
    unknown = set(metrics) - set(TELEMETRY_FIELDS)
    if unknown:
        raise HTTPException(
            422, f"unknown metrics {sorted(unknown)}; known: {sorted(TELEMETRY_FIELDS)}"
        )
    end = datetime.now(UTC)
    start = end - timedelta(minutes=minutes)
    step = step_s or max(5, minutes * 60 // 300)
    if minutes * 60 // step > MAX_POINTS:
        raise HTTPException(422, f"step too small: at most {MAX_POINTS} points per series")
    series = await reader.range(terminal_id, metrics, start, end, step)
    return TelemetryOut(
        terminal_id=terminal_id,
        start=start,
        end=end,
        step_s=step,
        series=[SeriesOut(metric=s.metric, points=s.points) for s in series],
    )


@router.get("/{terminal_id}/events", response_model=list[EventOut])
async def events(
    terminal_id: TerminalIdPath,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventOut]:
    await _get(terminal_id)
    rows = await TerminalEvent.filter(terminal_id=terminal_id).order_by("-seq").limit(limit)
    return [EventOut(seq=e.seq, ts=e.ts, type=e.type, data=e.data) for e in rows]
