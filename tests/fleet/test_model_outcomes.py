"""Liveness outcomes per model version from session records, and a model rollout that aborts
on the manual-review business threshold, on both databases the cloud supports (PostgreSQL as
a real child process).

The verdicts stored in the sessions are made by the terminal's own code
(`edge.vision.verdict.decide`), as the cloud stores what the agent sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.db import close_db, open_db
from cloud.models import Terminal
from cloud.quality.models import ReviewItem
from cloud.sessions.models import TellerSession
from cuntong.servers.postgres import Postgres
from edge.vision.challenge import Challenge
from edge.vision.pipeline import FrameAnalysis
from edge.vision.planarity import Planarity
from edge.vision.verdict import FrameDigest, Policy, decide
from fleet import lifecycle as lc
from fleet import model_outcomes as mo
from fleet import outcomes, rollouts
from fleet import rollout as ro
from fleet.models import FleetCommand, Group, RolloutDoc
from tests.helpers import fresh_database

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
OLD = {"blazeface-short-range": "0.10.21+onnx.1", "bank-probe": "2026.1"}
NEW = {"blazeface-short-range": "0.10.21+onnx.1", "bank-probe": "2026.2"}


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[None]:
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'fleet.sqlite3'}"
    else:
        pg: Postgres = request.getfixturevalue("postgres_server")
        url = await fresh_database(pg, "o")
    EXECUTOR_CACHE.clear()
    await open_db(url)
    try:
        yield
    finally:
        await close_db()


def verdict(passed: bool, models: dict[str, str]) -> dict[str, object]:
    """A liveness result as the terminal makes it: a passed or a timed-out challenge."""
    challenge = Challenge(
        order=("shake",), step_timeout=8, outcome="passed" if passed else "CHALLENGE_TIMEOUT"
    )
    head = Planarity(measured=((1, 0.05), (1, 0.05), (-1, 0.05), (-1, 0.05)))
    frames = [FrameAnalysis(faces=1, reasons=(), passive=0.95)]
    return decide(
        frames, challenge, Policy(), "password_reset", models, FrameDigest(), head
    ).to_dict()


_n = 0


async def session(tid: str, at: dt.datetime, v: dict[str, object], qa: bool | None = None) -> None:
    global _n
    _n += 1
    sid = f"s{_n:04d}"
    await TellerSession.create(
        id=sid, terminal_id=tid, business="password_reset", language="zh", state="closed",
        requested_at=at, updated_at=at, liveness=v,
    )  # fmt: skip
    if qa is not None:
        await ReviewItem.create(
            session_id=sid, business="password_reset", teller_id="t1", reason="sampled",
            queued_at=at, reviewed_at=at, passed=qa,
        )  # fmt: skip


async def _fleet() -> None:
    for tid in ("P1", "P2", "C1", "C2"):
        await Terminal.create(id=tid, city="宝鸡市")
    await Group.create(name="pilot", kind="static", members=["P1", "P2"])
    await Group.create(name="control", kind="static", members=["C1", "C2"])


async def test_outcomes_per_model_version_group_and_day(db: None) -> None:
    await _fleet()
    await session("C1", T0, verdict(True, OLD), qa=True)
    await session("C1", T0, verdict(True, OLD), qa=False)  # quality review overturns a pass
    await session("C2", T0, verdict(False, OLD))
    await session("P1", T0 + dt.timedelta(days=1), verdict(False, NEW))
    report = await outcomes.report(T0, T0 + dt.timedelta(days=2), dt.timedelta(days=1))
    rows = {(r["model"], r["group"], r["period_start"][:10]): r for r in report["rows"]}
    old = rows[("bank-probe@2026.1", "control", "2026-11-25")]
    assert old["sessions"] == 3 and old["pass_rate"] == pytest.approx(2 / 3)
    assert old["manual_review_rate"] == pytest.approx(1 / 3)
    assert old["overturn_rate"] == 0.5 and old["qa_scored_passes"] == 2
    new = rows[("bank-probe@2026.2", "pilot", "2026-11-26")]
    assert new["sessions"] == 1 and new["manual_review_rate"] == 1.0
    assert new["overturn_rate"] is None  # no pass of it was scored: not 0
    assert ("bank-probe@2026.2", "control", "2026-11-26") not in rows
    assert rows[("blazeface-short-range@0.10.21+onnx.1", "all", "2026-11-25")]["sessions"] == 3


async def _rollout_with_sessions(treated_reviews: int, points: float) -> ro.Rollout:
    """A model rollout to the pilot group (both installs succeed), 4 sessions on the new
    version of which `treated_reviews` go to manual review, 4 control sessions with 1."""
    await _fleet()
    plan = ro.Plan(canary=0, abort_review_points=points, control_group="control", min_sessions=4)
    args = {"component": "model.liveness", "version": "bank-2026.2"}
    back = {"component": "model.liveness"}
    doc = await rollouts.create(
        "bank models", "pilot", "ota_install", args, plan, T0, "ota_rollback", back
    )
    clock = [T0]
    engine = rollouts.RolloutEngine(kick=lambda: None, clock=lambda: clock[0])
    await engine.advance(doc)  # queues the installs
    await FleetCommand.filter(batch=f"{doc.id}-i").update(
        state=lc.State.SUCCEEDED.value, finished_at=T0
    )
    for i in range(4):
        at = T0 + dt.timedelta(minutes=10 + i)
        await session("P1" if i % 2 else "P2", at, verdict(i >= treated_reviews, NEW))
        await session("C1" if i % 2 else "C2", at, verdict(i >= 1, OLD))
    clock[0] = T0 + dt.timedelta(minutes=30)
    return await engine.advance(await RolloutDoc.get(id=doc.id))


async def test_a_model_rollout_aborts_on_the_manual_review_threshold(db: None) -> None:
    r = await _rollout_with_sessions(treated_reviews=3, points=25)
    assert r.phase is ro.Phase.ROLLING_BACK  # 75% vs 25%: 50 points over control
    assert "manual review 75.0% (3/4) is 50.0 points over control group 'control'" in r.reason
    assert {t.state for t in r.targets.values()} == {ro.T.ROLLING_BACK}


async def test_a_model_rollout_within_the_threshold_goes_on(db: None) -> None:
    r = await _rollout_with_sessions(treated_reviews=2, points=30)
    assert r.phase is ro.Phase.SUCCEEDED  # 50% vs 25%: 25 points, under 30


def test_business_threshold_needs_a_control_group_and_enough_sessions() -> None:
    with pytest.raises(ValueError, match="control_group"):
        ro.Plan(abort_review_points=5)
    plan = ro.Plan(abort_review_points=5, control_group="c", min_sessions=10)
    assert ro.Plan.from_dict(plan.to_dict()) == plan
    r = ro.plan_waves(["a"], plan)
    few = ro.Business(sessions=9, manual_review=9, control_sessions=50, control_manual_review=0)
    assert ro.step(r, plan, T0, few)[0].phase is ro.Phase.RUNNING
    assert mo.review_points_over_control(mo.Rates(), mo.Rates()) is None
