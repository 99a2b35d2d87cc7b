"""Liveness outcomes per model version from session records, and a model rollout that aborts
on its business guard (a significance test of the pass, manual-review and QA-overturn rates
against a control group, or a fixed manual-review threshold), on both databases the cloud
supports (PostgreSQL as a real child process).

Every record is made by its producer: the verdicts by the terminal's own code
(`edge.vision.verdict.decide`), the session rows by the desk's store
(`cloud.sessions.store.save` of the request transition, `set_liveness` of the verdict the
agent sent), the quality reviews by `cloud.quality.service` (`consider` when the session
ends, `submit` of a reviewer's checklist).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.auth import audit
from cloud.catalogue import load_catalogue
from cloud.db import close_db, open_db
from cloud.models import Terminal
from cloud.quality import rules
from cloud.quality import service as quality
from cloud.sessions import state as st
from cloud.sessions import store
from cloud.sessions.desk import SessionFacts
from cuntong.servers.postgres import Postgres
from edge.vision.challenge import Challenge
from edge.vision.pipeline import FrameAnalysis
from edge.vision.planarity import Planarity
from edge.vision.verdict import FrameDigest, Policy, decide
from fleet import lifecycle as lc
from fleet import model_outcomes as mo
from fleet import outcomes, rollouts
from fleet import rollout as ro
from fleet.api import rollouts as rollouts_api
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
    head = Planarity(measured=((1, 0.05), (1, 0.05), (-1, 0.05), (-1, 0.05)), peaks=(20.0, 20.0))
    frames = [FrameAnalysis(faces=1, reasons=(), passive=0.95)]
    return decide(
        frames, challenge, Policy(), "password_reset", models, FrameDigest(), head
    ).to_dict()


_n = 0
#: The shipped catalogue, with every password reset sampled for quality review.
CATALOGUE = load_catalogue()
CATALOGUE = dataclasses.replace(
    CATALOGUE,
    businesses={
        **CATALOGUE.businesses,
        "password_reset": dataclasses.replace(CATALOGUE.get("password_reset"), qa_sample_rate=1.0),
    },
)
FULL = {k: item.points for k, item in rules.CHECKLIST.items()}
#: A reviewer's checklist that fails the session: the identity was not verified.
FAILED = {**FULL, "identity_verified": 0}


async def session(tid: str, at: dt.datetime, v: dict[str, object], qa: bool | None = None) -> None:
    """One teller session as the desk records it: the request transition (which creates the
    row), the terminal's verdict, the review queue at its end and, if `qa` is given, a
    reviewer's checklist that passes or fails it."""
    global _n
    _n += 1
    sid = f"s{_n:04d}"
    record = st.new_session(sid, at).history[0]
    await store.save(record, SessionFacts(tid, "password_reset", "zh", elderly=False))
    assert await store.set_liveness(sid, tid, v)
    queued = await quality.consider(
        CATALOGUE, session_id=sid, business="password_reset", teller_id="t1",
        liveness_score=float(v["score"]), closed_at=at, salt=b"q" * 32,  # type: ignore[arg-type]
    )  # fmt: skip
    assert queued is not None  # every password reset is sampled here
    if qa is not None:
        await quality.submit(sid, "r1", FULL if qa else FAILED, "", at)


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


async def _rollout(
    plan: ro.Plan, treated: list[tuple[bool, bool | None]], control: list[tuple[bool, bool | None]]
) -> tuple[RolloutDoc, ro.Rollout]:
    """A model rollout to the pilot group (both installs succeed), then liveness sessions
    on the new version (`treated`, alternating P1/P2) and in the control group (`control`,
    C1/C2), each `(passed, qa)`, then one beat of the engine."""
    await _fleet()
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
    for side, models, terminals in ((treated, NEW, ("P1", "P2")), (control, OLD, ("C1", "C2"))):
        for i, (passed, qa) in enumerate(side):
            at = T0 + dt.timedelta(minutes=10, seconds=i)
            await session(terminals[i % 2], at, verdict(passed, models), qa)
    clock[0] = T0 + dt.timedelta(minutes=30)
    doc = await RolloutDoc.get(id=doc.id)
    return doc, await engine.advance(doc)


def _sessions(n: int, reviews: int = 0, overturned: int = 0) -> list[tuple[bool, bool | None]]:
    """`n` sessions, the first `reviews` sent to manual review; of the passes, the first
    `overturned` failed by a quality reviewer and the rest passed by one."""
    out: list[tuple[bool, bool | None]] = []
    for i in range(n):
        passed = i >= reviews
        out.append((passed, (i - reviews >= overturned) if passed else None))
    return out


async def _rollout_with_sessions(treated_reviews: int, points: float) -> ro.Rollout:
    """The fixed-threshold rule: 4 sessions on the new version of which `treated_reviews`
    go to manual review, 4 control sessions with 1."""
    plan = ro.Plan(canary=0, abort_review_points=points, control_group="control", min_sessions=4)
    return (await _rollout(plan, _sessions(4, treated_reviews), _sessions(4, 1)))[1]


async def test_a_model_rollout_aborts_on_the_manual_review_threshold(db: None) -> None:
    r = await _rollout_with_sessions(treated_reviews=3, points=25)
    assert r.phase is ro.Phase.ROLLING_BACK  # 75% vs 25%: 50 points over control
    assert "manual review 75.0% (3/4) is 50.0 points over control group 'control'" in r.reason
    assert {t.state for t in r.targets.values()} == {ro.T.ROLLING_BACK}


async def test_a_model_rollout_within_the_threshold_goes_on(db: None) -> None:
    r = await _rollout_with_sessions(treated_reviews=2, points=30)
    assert r.phase is ro.Phase.SUCCEEDED  # 50% vs 25%: 25 points, under 30


def _guard(**kw: object) -> ro.Plan:
    """Fisher's exact test at one look (the engine's one beat here): the counts and p-values
    below are Fisher's. The default always-valid test is checked further down and in
    tests/fleet/test_sequential_guard.py."""
    values: dict[str, object] = {"min_sessions": 20, "abort_test": "fisher-per-look", **kw}
    return ro.Plan(canary=0, abort_alpha=0.01, control_group="control", **values)  # type: ignore[arg-type]


async def test_a_significant_rise_in_manual_reviews_aborts_and_is_recorded(db: None) -> None:
    # 15 of 30 to manual review against 3 of 30: Fisher's exact p = 0.0015 two-sided.
    doc, r = await _rollout(_guard(), _sessions(30, reviews=15), _sessions(30, reviews=3))
    assert r.phase is ro.Phase.ROLLING_BACK
    assert r.reason.startswith(
        "manual-review rate 50.0% (15/30) vs control group 'control' 10.0% (3/30)"
    )
    assert "Fisher's exact p=0.00" in r.reason and "(alpha 0.01 over 3 rates)" in r.reason
    entry = (await audit.latest(rollouts.GUARD_ABORT, [doc.id]))[doc.id]
    assert entry["rule"] == "significance" and entry["rate"] == "manual_review_rate"
    assert entry["reason"] == r.reason and entry["control_group"] == "control"
    assert (entry["treated"]["sessions"], entry["treated"]["manual_review"]) == (30, 15)
    assert (entry["control"]["sessions"], entry["control"]["manual_review"]) == (30, 3)
    tests = {t["rate"]: t for t in entry["tests"]}
    review = tests["manual_review_rate"]
    assert (review["treated"], review["treated_of"], review["control"], review["control_of"]) == (
        15, 30, 3, 30,
    )  # fmt: skip
    assert review["p_value"] == pytest.approx(0.0015064, rel=1e-3) and review["breached"]
    assert review["level"] == pytest.approx(0.01 / 3)
    # The pass rate is its complement; the new version's 15 reviewed passes are under the
    # 20 the plan wants before it judges the overturn rate.
    assert tests["pass_rate"]["p_value"] == pytest.approx(review["p_value"])
    assert (tests["pass_rate"]["treated"], tests["pass_rate"]["control"]) == (15, 27)
    overturn = tests["overturn_rate"]
    assert (overturn["treated_of"], overturn["control_of"]) == (15, 27)
    assert overturn["p_value"] is None and not overturn["breached"]
    # What the API (and so the dashboard) shows for the rollout.
    shown = await rollouts_api.get_rollout(doc.id)
    assert shown["guard_abort"]["rate"] == "manual_review_rate" and shown["reason"] == r.reason
    listed = await rollouts_api.list_rollouts(limit=5)
    assert listed[0]["guard_abort"]["tests"] == entry["tests"]


async def test_a_rise_in_qa_overturns_alone_aborts_on_that_rate(db: None) -> None:
    # Both sides pass every session; reviewers fail 10 of 20 new-version passes, 0 of 20 old.
    doc, r = await _rollout(_guard(), _sessions(20, overturned=10), _sessions(20, overturned=0))
    assert r.phase is ro.Phase.ROLLING_BACK
    assert r.reason.startswith(
        "QA-overturn rate 50.0% (10/20) vs control group 'control' 0.0% (0/20)"
    )
    entry = (await audit.latest(rollouts.GUARD_ABORT, [doc.id]))[doc.id]
    assert entry["rate"] == "overturn_rate"
    assert entry["tests"][0]["p_value"] == pytest.approx(0.00043592, rel=1e-3)
    assert {t["rate"]: t["p_value"] for t in entry["tests"][1:]} == {
        "manual_review_rate": 1.0,
        "pass_rate": 1.0,
    }


async def test_a_difference_within_chance_does_not_abort(db: None) -> None:
    # 5 of 30 against 3 of 30 (p = 0.71), and an overturn each side.
    doc, r = await _rollout(
        _guard(), _sessions(30, reviews=5, overturned=1), _sessions(30, reviews=3, overturned=1)
    )
    assert r.phase is ro.Phase.SUCCEEDED, r.reason
    assert await audit.latest(rollouts.GUARD_ABORT, [doc.id]) == {}


async def test_too_few_sessions_are_not_judged(db: None) -> None:
    # The same 15-of-30 rise, but the plan wants 40 sessions a side before it judges.
    _, r = await _rollout(
        _guard(min_sessions=40), _sessions(30, reviews=15), _sessions(30, reviews=3)
    )
    assert r.phase is ro.Phase.SUCCEEDED


async def test_worse_only_lets_a_higher_pass_rate_through(db: None) -> None:
    # The new version passes 30 of 30 against 15 of 30: a two-sided guard stops a model
    # that suddenly passes everyone; "worse" tests only the harmful directions.
    _, r = await _rollout(_guard(), _sessions(30), _sessions(30, reviews=15))
    assert r.phase is ro.Phase.ROLLING_BACK
    assert r.reason.startswith("manual-review rate 0.0% (0/30) vs control group 'control' 50.0%")
    await _clear()
    _, r = await _rollout(
        _guard(abort_alternative="worse"), _sessions(30), _sessions(30, reviews=15)
    )
    assert r.phase is ro.Phase.SUCCEEDED, r.reason


DEFAULT_GUARD = ro.Plan(canary=0, abort_alpha=0.01, control_group="control", min_sessions=20)


async def test_the_default_always_valid_guard_needs_more_evidence(db: None) -> None:
    """By default the guard's test stays valid over every beat's look, so the 15-of-30
    against 3-of-30 rise that one Fisher look calls significant (p 0.0015) is not enough
    (always-valid p 0.073)."""
    assert DEFAULT_GUARD.abort_test == "always-valid"
    _, r = await _rollout(DEFAULT_GUARD, _sessions(30, reviews=15), _sessions(30, reviews=3))
    assert r.phase is ro.Phase.SUCCEEDED, r.reason


async def test_the_default_always_valid_guard_aborts_and_says_which_test(db: None) -> None:
    """20 of 40 against 2 of 40 is enough (always-valid p 0.00066 < 0.01 / 3)."""
    default = DEFAULT_GUARD
    doc, r = await _rollout(default, _sessions(40, reviews=20), _sessions(40, reviews=2))
    assert r.phase is ro.Phase.ROLLING_BACK
    assert r.reason.startswith("manual-review rate 50.0% (20/40) vs control group 'control'")
    assert "always-valid (mixture likelihood ratio, any number of looks) p=0.000664" in r.reason
    entry = (await audit.latest(rollouts.GUARD_ABORT, [doc.id]))[doc.id]
    assert entry["test"] == "always-valid" and entry["tests"][0]["test"] == "always-valid"
    assert entry["tests"][0]["p_value"] == pytest.approx(0.00066372, rel=1e-3)


async def _clear() -> None:
    for model in (Terminal, Group, RolloutDoc, FleetCommand):
        await model.all().delete()


def test_business_guard_needs_a_control_group_and_enough_sessions() -> None:
    with pytest.raises(ValueError, match="control_group"):
        ro.Plan(abort_review_points=5)
    with pytest.raises(ValueError, match="control_group"):
        ro.Plan(abort_alpha=0.01)
    with pytest.raises(ValueError, match="abort_alpha must be between 0 and 1"):
        ro.Plan(abort_alpha=1.5, control_group="c")
    with pytest.raises(ValueError, match="abort_rates"):
        ro.Plan(abort_alpha=0.01, control_group="c", abort_rates=("speed",))
    with pytest.raises(ValueError, match="abort_alternative"):
        ro.Plan(abort_alpha=0.01, control_group="c", abort_alternative="greater")
    with pytest.raises(ValueError, match="abort_test must be one of"):
        ro.Plan(abort_alpha=0.01, control_group="c", abort_test="pocock")
    plan = ro.Plan(abort_review_points=5, control_group="c", min_sessions=10)
    assert ro.Plan.from_dict(plan.to_dict()) == plan
    guarded = _guard(abort_rates=("overturn_rate",))
    assert ro.Plan.from_dict(guarded.to_dict()) == guarded
    r = ro.plan_waves(["a"], plan)
    few = ro.Business(mo.rates([]), mo.rates([]))
    assert ro.step(r, plan, T0, few)[0].phase is ro.Phase.RUNNING
    assert mo.review_points_over_control(mo.Rates(), mo.Rates()) is None
