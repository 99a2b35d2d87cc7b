"""Teller KPIs and the half-hour staffing plan from contact records."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud.ops import erlang
from cloud.ops.kpi import ContactRecord, kpis, per_teller, staffing_plan

T0 = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


def _c(
    i: int, wait: float | None, talk: float | None, teller: str | None = "t1", **kw: object
) -> ContactRecord:
    offered = T0 + dt.timedelta(minutes=i)
    answered = (
        offered + dt.timedelta(seconds=wait) if wait is not None and talk is not None else None
    )
    ended = (
        answered + dt.timedelta(seconds=talk)
        if answered and talk is not None
        else offered + dt.timedelta(seconds=wait or 0)
    )
    return ContactRecord(
        f"s{i}", "card_loss", offered, answered, ended, teller if answered else None, **kw
    )  # type: ignore[arg-type]


def test_kpi_definitions() -> None:
    records = [
        _c(0, 10, 300, wrap_up_s=30, resolved_first_contact=True, satisfaction=5),
        _c(1, 30, 200, resolved_first_contact=False, satisfaction=3),
        _c(2, 15, 100, teller="t2", resolved_first_contact=True, satisfaction=4),
        _c(3, 40, None),  # abandoned after 40 s
        _c(4, 2, None),  # short abandon: not counted
    ]
    k = kpis(records)
    assert (k.offered, k.handled, k.abandoned) == (4, 3, 1)
    assert k.service_level == pytest.approx(2 / 4)
    assert k.abandonment == pytest.approx(1 / 4)
    assert k.asa_s == pytest.approx((10 + 30 + 15) / 3)
    assert k.aht_s == pytest.approx((330 + 200 + 100) / 3)
    assert k.fcr == pytest.approx(2 / 3)
    assert k.satisfaction == pytest.approx(4.0) and k.satisfied_share == pytest.approx(2 / 3)
    tellers = per_teller(records, quality={"t1": [90.0, 80.0]})
    assert sorted(tellers) == ["t1", "t2"]
    assert tellers["t1"].handled == 2 and tellers["t1"].quality == 85.0
    assert tellers["t2"].quality is None
    empty = kpis([])
    assert empty.service_level is None and empty.asa_s is None


def test_staffing_plan_per_half_hour_matches_erlang_c() -> None:
    # 150 arrivals in 09:00-09:30 handled in 360 s each = 300/h: the reference case, N=36.
    first = [
        ContactRecord(
            f"a{i}",
            "x",
            T0 + dt.timedelta(seconds=12 * i),
            T0 + dt.timedelta(seconds=12 * i),
            T0 + dt.timedelta(seconds=12 * i + 360),
        )
        for i in range(150)
    ]
    # 10 arrivals 09:30-10:00, none finished: falls back to the overall AHT.
    second = [ContactRecord(f"b{i}", "x", T0 + dt.timedelta(minutes=31 + i)) for i in range(10)]
    plan = staffing_plan(first + second)
    assert [p.start.minute for p in plan] == [0, 30]
    assert plan[0].calls == 150 and plan[0].aht_s == 360 and plan[0].staffing.agents == 36
    assert plan[1].aht_s == 360
    assert plan[1].staffing == erlang.agents_needed(10, 1800, 360)
