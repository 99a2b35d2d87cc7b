"""Workflow rules: order, second person, device steps and overrides, outcome.

Device steps are passed here with ``record_device_step``, as ``cloud.workflow.steps.accept``
does after verifying a terminal's signed result (that checking is tested in
``test_device_steps.py``)."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud.catalogue import load_catalogue
from cloud.workflow import engine
from cloud.workflow.engine import Actor, Outcome
from cloud.workflow.errors import (
    DeviceStepOnly,
    SecondPersonRequired,
    StepOutOfOrder,
    WorkflowClosed,
    WorkflowIncomplete,
)

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
TELLER = Actor("t-1", frozenset({"teller"}))
SUPERVISOR = Actor("s-1", frozenset({"supervisor"}))
REVIEWER = Actor("r-1", frozenset({"reviewer"}))
CAT = load_catalogue()


def _walk_until(wf: engine.Workflow, stop: str | None) -> engine.Workflow:
    while wf.next_step != stop:
        step = wf.next_step
        assert step is not None
        if step in engine.MACHINE_STEPS:
            wf, _ = engine.record_device_step(wf, step, "terminal:SX-1", NOW, {"score": 95})
        else:
            wf, _ = engine.record_step(wf, step, TELLER, NOW)
    return wf


def test_high_risk_business_cannot_complete_without_supervisor() -> None:
    wf = engine.start(CAT.get("password_reset"), "s1", "t-1", NOW)
    wf = _walk_until(wf, "supervisor_authorisation")
    with pytest.raises(WorkflowIncomplete, match="supervisor_authorisation"):
        engine.complete(wf, NOW)
    with pytest.raises(SecondPersonRequired):
        engine.record_step(wf, "supervisor_authorisation", TELLER, NOW)
    # A supervisor who is also the serving teller is still not a second person.
    with pytest.raises(SecondPersonRequired):
        engine.record_step(
            wf, "supervisor_authorisation", Actor("t-1", frozenset({"supervisor"})), NOW
        )
    with pytest.raises(SecondPersonRequired):
        engine.record_step(wf, "supervisor_authorisation", REVIEWER, NOW)
    wf, rec = engine.record_step(wf, "supervisor_authorisation", SUPERVISOR, NOW)
    assert rec.actor == "s-1"
    done = engine.complete(wf, NOW + dt.timedelta(minutes=5))
    assert done.outcome is Outcome.COMPLETED and done.ended_at == NOW + dt.timedelta(minutes=5)
    assert [r.step for r in done.records] == list(CAT.get("password_reset").steps)


def test_steps_cannot_be_skipped_or_repeated() -> None:
    wf = engine.start(CAT.get("card_loss"), "s2", "t-1", NOW)
    with pytest.raises(StepOutOfOrder, match="next step is 'dual_recording'"):
        engine.record_step(wf, "id_card_read", TELLER, NOW)
    wf, _ = engine.record_step(wf, "dual_recording", TELLER, NOW)
    with pytest.raises(StepOutOfOrder):
        engine.record_step(wf, "dual_recording", TELLER, NOW)


def test_device_steps_pass_only_by_result_or_supervisor_override() -> None:
    wf = _walk_until(engine.start(CAT.get("card_loss"), "s3", "t-1", NOW), "liveness")
    with pytest.raises(DeviceStepOnly, match="done by the terminal"):
        engine.record_step(wf, "liveness", TELLER, NOW)
    with pytest.raises(DeviceStepOnly, match="done by the cloud"):
        engine.record_step(
            _walk_until(engine.start(CAT.get("card_loss"), "s3b", "t-1", NOW), "id_online_check"),
            "id_online_check",
            SUPERVISOR,
            NOW,
        )
    for who in (TELLER, REVIEWER, Actor("t-1", frozenset({"supervisor"}))):
        with pytest.raises(SecondPersonRequired):
            engine.override(wf, "liveness", who, "camera broken", NOW)
    with pytest.raises(ValueError, match="written reason"):
        engine.override(wf, "liveness", SUPERVISOR, "  ", NOW)
    with pytest.raises(StepOutOfOrder):
        engine.override(wf, "e_signature", SUPERVISOR, "not a device step", NOW)
    assert not engine.overridden(wf)
    passed, rec = engine.override(wf, "liveness", SUPERVISOR, " camera broken ", NOW)
    assert passed.next_step == "e_signature" and engine.overridden(passed)
    assert (rec.actor, rec.detail) == ("s-1", {"override": True, "reason": "camera broken"})
    # The liveness score the rules read is the terminal's, from its verified result.
    assert engine.liveness_score(wf) is None
    scored, _ = engine.record_device_step(wf, "liveness", "terminal:SX-1", NOW, {"score": 88})
    assert engine.liveness_score(scored) == 88.0


def test_failed_step_rejects_and_closes() -> None:
    wf = _walk_until(engine.start(CAT.get("card_loss"), "s4", "t-1", NOW), "id_online_check")
    wf, _ = engine.record_step(wf, "id_online_check", TELLER, NOW, passed=False)
    assert wf.outcome is Outcome.REJECTED
    with pytest.raises(WorkflowClosed):
        engine.record_device_step(wf, "liveness", "terminal:SX-1", NOW, {"score": 99})
    with pytest.raises(WorkflowClosed):
        engine.complete(wf, NOW)


def test_low_risk_completes_without_second_person_and_abandon() -> None:
    wf = _walk_until(engine.start(CAT.get("balance_inquiry"), "s5", "t-1", NOW), None)
    assert engine.complete(wf, NOW).outcome is Outcome.COMPLETED
    gone = engine.abandon(engine.start(CAT.get("pension"), "s6", "t-1", NOW), NOW)
    assert gone.outcome is Outcome.ABANDONED
    with pytest.raises(ValueError, match="naive"):
        engine.start(CAT.get("pension"), "s7", "t-1", dt.datetime(2026, 1, 1))  # noqa: DTZ001


def test_a_transferred_workflow_keeps_its_steps_under_the_new_teller() -> None:
    wf = engine.start(CAT.get("password_reset"), "s6", "t-1", NOW)
    wf, _ = engine.record_step(wf, wf.next_step or "", TELLER, NOW)
    moved = engine.hand_over(wf, "t-2")
    assert moved.teller_id == "t-2" and moved.records == wf.records
    # The high-risk rule still holds after the hand-over: a supervisor authorises.
    with pytest.raises(SecondPersonRequired):
        engine.record_step(
            _walk_until(moved, "supervisor_authorisation"),
            "supervisor_authorisation",
            Actor("t-2", frozenset({"teller"})),
            NOW,
        )
    moved = _walk_until(moved, "supervisor_authorisation")
    wf2, rec = engine.record_step(moved, "supervisor_authorisation", SUPERVISOR, NOW)
    assert rec.actor == "s-1"
    with pytest.raises(WorkflowClosed):
        engine.hand_over(engine.complete(wf2, NOW), "t-3")
