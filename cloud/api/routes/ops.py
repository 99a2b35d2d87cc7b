"""Operations routes: teller KPIs, the staffing suggestion, the big-screen overview."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from cloud.api.deps import Contacts, Live, Now, require
from cloud.auth.deps import Principal
from cloud.auth.roles import Role
from cloud.models import Terminal
from cloud.ops import kpi
from cloud.quality.service import quality_by_teller

router = APIRouter(prefix="/ops", tags=["ops"])
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR))]
SCREEN = Path(__file__).parents[2] / "ops" / "static" / "screen.html"


def _window(
    now: dt.datetime, since: dt.datetime | None, until: dt.datetime | None
) -> tuple[dt.datetime, dt.datetime]:
    until = until or now
    return since or until.replace(hour=0, minute=0, second=0, microsecond=0), until


@router.get("/kpis")
async def teller_kpis(
    now: Now,
    contacts: Contacts,
    _: Supervisor,
    since: Annotated[dt.datetime | None, Query()] = None,
    until: Annotated[dt.datetime | None, Query()] = None,
) -> dict[str, Any]:
    """Per-teller and overall KPIs over [since, until) (default: today so far, UTC)."""
    start, end = _window(now, since, until)
    records = await contacts(start, end)
    quality = await quality_by_teller(start, end)
    return {
        "since": start,
        "until": end,
        "overall": asdict(kpi.kpis(records)),
        "tellers": {t: asdict(k) for t, k in kpi.per_teller(records, quality).items()},
    }


@router.get("/staffing")
async def staffing(
    now: Now,
    contacts: Contacts,
    _: Supervisor,
    since: Annotated[dt.datetime | None, Query()] = None,
    until: Annotated[dt.datetime | None, Query()] = None,
    target_sl: Annotated[float, Query(gt=0, lt=1)] = 0.8,
    target_s: Annotated[float, Query(gt=0)] = 20.0,
    shrinkage: Annotated[float, Query(ge=0, lt=1)] = 0.3,
) -> list[dict[str, Any]]:
    """Erlang C agents per half-hour from the arrivals and handle times observed."""
    start, end = _window(now, since, until)
    records = await contacts(start, end)
    plan = kpi.staffing_plan(records, target_sl=target_sl, target_s=target_s, shrinkage=shrinkage)
    return [
        {"start": p.start, "calls": p.calls, "aht_s": p.aht_s, **asdict(p.staffing)} for p in plan
    ]


@router.get("/overview")
async def overview(
    now: Now,
    contacts: Contacts,
    live_source: Live,
    _: Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.FLEET_OPERATOR))],
) -> dict[str, Any]:
    """The big screen's numbers: sessions today, queue now, tellers by state, terminals."""
    start, end = _window(now, None, None)
    today = kpi.kpis(await contacts(start, end))
    live = await live_source()
    return {
        "at": end,
        "sessions_today": today.offered,
        "handled_today": today.handled,
        "service_level_today": today.service_level,
        "queue_now": live.queued,
        "longest_wait_s": live.longest_wait_s,
        "tellers": dict(live.tellers),
        "terminals_online": await Terminal.filter(online=True).count(),
        "terminals_total": await Terminal.all().count(),
    }


@router.get("/screen", response_class=HTMLResponse, include_in_schema=False)
async def screen() -> HTMLResponse:
    """The monitoring big-screen page (static; it polls /overview with the viewer's token)."""
    return HTMLResponse(SCREEN.read_text())
