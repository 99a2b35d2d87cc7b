"""The rollout state machine: waves, rate limit, window, thresholds, rollback, operator."""

from __future__ import annotations

import datetime as dt

import pytest

from fleet import rollout as ro

T0 = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)  # 23:00 in China


def _run_all(r: ro.Rollout, plan: ro.Plan, fail: set[str], now: dt.datetime) -> ro.Rollout:
    """Drive the rollout, answering every install at once, until it stops acting."""
    for _ in range(10_000):
        r, actions = ro.step(r, plan, now)
        if not actions and r.phase in ro.FINAL_PHASES:
            return r
        for a in actions:
            ok = a.kind == "rollback" or a.terminal_id not in fail
            r, more = ro.record(r, a.terminal_id, "succeeded" if ok else "failed")
            assert not more
        now += dt.timedelta(seconds=1)
    raise AssertionError("rollout did not settle")


def test_waves_canary_first_then_chunks() -> None:
    r = ro.plan_waves([f"T{i}" for i in range(25)], ro.Plan(canary=2, wave_size=10))
    assert r.waves == 4
    assert [t.wave for t in list(r.targets.values())[:4]] == [0, 0, 1, 1]
    r, actions = ro.step(r, ro.Plan(canary=2, wave_size=10), T0)
    assert [a.terminal_id for a in actions] == ["T0", "T1"]
    _, again = ro.step(r, ro.Plan(canary=2, wave_size=10), T0)
    assert again == []  # the next wave waits for the canary


def test_healthy_rollout_succeeds() -> None:
    plan = ro.Plan(canary=5, wave_size=50)
    r = _run_all(ro.plan_waves([f"T{i}" for i in range(200)], plan), plan, set(), T0)
    assert r.phase is ro.Phase.SUCCEEDED and ro.counts(r) == {"succeeded": 200}


def test_ten_percent_failures_abort_after_the_canary_and_roll_back() -> None:
    ids = [f"T{i}" for i in range(200)]
    fail = {tid for i, tid in enumerate(ids) if i % 10 == 3}
    plan = ro.Plan(canary=20, wave_size=60, abort_failure_pct=5, min_finished=20)
    r = _run_all(ro.plan_waves(ids, plan), plan, fail, T0)
    assert r.phase is ro.Phase.ROLLED_BACK and "failures 2/20" in r.reason
    c = ro.counts(r)
    assert c == {"rolled_back": 18, "failed": 2, "cancelled": 180}


def test_rate_limit_and_maintenance_window() -> None:
    window = ro.Window.parse("22:00-06:00")
    assert window.open(T0) and not window.open(T0.replace(hour=4))  # 12:00 in China
    plan = ro.Plan(canary=0, wave_size=100, max_per_minute=30, window=window)
    r = ro.plan_waves([f"T{i}" for i in range(100)], plan)
    r, started = ro.step(r, plan, T0.replace(hour=4))
    assert started == []  # outside the window nothing starts
    r, started = ro.step(r, plan, T0)
    assert len(started) == 30
    r, started = ro.step(r, plan, T0 + dt.timedelta(seconds=30))
    assert started == []
    r, started = ro.step(r, plan, T0 + dt.timedelta(seconds=61))
    assert len(started) == 30


def test_timeouts_threshold_without_rollback_aborts() -> None:
    plan = ro.Plan(canary=4, abort_timeout_pct=20, min_finished=4, rollback=False)
    r = ro.plan_waves(["A", "B", "C", "D", "E"], plan)
    r, _ = ro.step(r, plan, T0)
    for tid, outcome in zip(
        "ABCD", ("succeeded", "timed_out", "succeeded", "succeeded"), strict=True
    ):
        r, _ = ro.record(r, tid, outcome)
    r, actions = ro.step(r, plan, T0)
    assert r.phase is ro.Phase.ABORTED and actions == []
    assert r.targets["E"].state is ro.T.CANCELLED


def test_operator_pause_resume_cancel_and_late_success_rolls_back() -> None:
    plan = ro.Plan(canary=2, min_finished=1, abort_failure_pct=10)
    r = ro.plan_waves(["A", "B", "C"], plan)
    r, _ = ro.step(r, plan, T0)
    paused = ro.pause(r)
    assert ro.step(paused, plan, T0) == (paused, [])
    with pytest.raises(ValueError):
        ro.resume(r)
    r = ro.resume(paused)
    r, _ = ro.record(r, "A", "failed")
    r, _ = ro.step(r, plan, T0)
    assert r.phase is ro.Phase.ROLLING_BACK
    r, actions = ro.record(r, "B", "succeeded")  # B was still installing at the abort
    assert actions == [ro.Action("rollback", "B")]
    r, _ = ro.record(r, "B", "succeeded")
    r, _ = ro.step(r, plan, T0)
    assert r.phase is ro.Phase.ROLLED_BACK
    assert ro.cancel(ro.plan_waves(["X"], plan)).targets["X"].state is ro.T.CANCELLED


def test_plan_round_trips_and_refuses_nonsense() -> None:
    plan = ro.Plan(canary=3, window=ro.Window.parse("22:00-06:00"), abort_failure_pct=5)
    assert ro.Plan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ValueError):
        ro.Plan(abort_failure_pct=150)
    with pytest.raises(ValueError):
        ro.Window.parse("late evening")
