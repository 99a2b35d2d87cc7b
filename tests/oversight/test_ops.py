"""Ops routes: KPIs with quality scores, the staffing plan, the big-screen overview."""

from __future__ import annotations

import datetime as dt

from cloud.api import deps
from cloud.models import Terminal
from cloud.ops.feeds import LiveState
from cloud.ops.kpi import ContactRecord
from tests.oversight.conftest import Cloud


async def test_kpis_staffing_overview_and_screen(cloud: Cloud) -> None:
    t0 = cloud.clock().replace(hour=8, minute=0)
    records = [
        ContactRecord(f"s{i}", "card_loss", t0 + dt.timedelta(seconds=12 * i),
                      t0 + dt.timedelta(seconds=12 * i + (5 if i % 2 else 25)),
                      t0 + dt.timedelta(seconds=12 * i + (5 if i % 2 else 25) + 360), f"t{i % 2}",
                      satisfaction=5)
        for i in range(150)
    ]  # fmt: skip
    asked: list[tuple[dt.datetime, dt.datetime]] = []

    async def contacts(since: dt.datetime, until: dt.datetime) -> list[ContactRecord]:
        asked.append((since, until))
        return [r for r in records if since <= r.offered_at < until]

    async def live() -> LiveState:
        return LiveState(queued=4, longest_wait_s=31.5, tellers={"available": 3, "busy": 12})

    cloud.app.dependency_overrides[deps.contacts] = lambda: contacts
    cloud.app.dependency_overrides[deps.live] = lambda: live
    await Terminal.create(id="T-1", online=True)
    await Terminal.create(id="T-2", online=False)

    teller = await cloud.client("t0", "teller")
    assert (await teller.get("/api/v1/ops/kpis")).status_code == 403
    fleet = await cloud.client("f1", "fleet_operator")
    assert (await fleet.get("/api/v1/ops/kpis")).status_code == 403
    view = (await fleet.get("/api/v1/ops/overview")).json()
    assert view["sessions_today"] == 150 and view["queue_now"] == 4
    assert view["tellers"] == {"available": 3, "busy": 12}
    assert (view["terminals_online"], view["terminals_total"]) == (1, 2)
    assert view["service_level_today"] == 0.5

    sup = await cloud.client("sup", "supervisor")
    kpis = (await sup.get("/api/v1/ops/kpis")).json()
    assert asked[-1] == (cloud.clock().replace(hour=0), cloud.clock())
    assert kpis["overall"]["handled"] == 150
    assert kpis["tellers"]["t1"]["service_level"] == 1.0 and kpis["tellers"]["t0"]["asa_s"] == 25
    plan = (await sup.get("/api/v1/ops/staffing", params={"shrinkage": 0})).json()
    assert [(p["calls"], p["agents"]) for p in plan] == [(150, 36)]  # 300/h x 360 s

    page = await cloud.http.get("/api/v1/ops/screen")
    assert page.status_code == 200 and "/api/v1/ops/overview" in page.text
