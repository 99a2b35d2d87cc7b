"""The workflow rules: a session walks its business's steps in order, none skipped.

Pure functions over a frozen ``Workflow`` value; time is an argument. Callers (the teller
session service) persist the returned value and append each ``StepRecord`` to the session's
evidence timeline.

Rules:
- only the next required step may be recorded (no skipping, no repeats);
- a step marked ``second_person`` in ``catalogue.STEPS`` must be performed by someone other
  than the serving teller who holds the ``supervisor`` role;
- a device step (``common.wire.call.DEVICE_STEPS``: the terminal performs it) and the cloud's
  own online identity check pass only on a verified result (``record_device_step``): the
  teller cannot mark them done (``DeviceStepOnly``), only mark them failed, which rejects;
- a device step whose device failed or is missing passes only by a supervisor's override
  (a second person, with a written reason, ``override``); the session then goes to full
  quality review (``overridden``);
- a failed step ends the workflow as ``rejected``; completing with steps outstanding fails.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cloud.catalogue import STEPS, Business
from cloud.workflow.errors import (
    DeviceStepOnly,
    SecondPersonRequired,
    StepOutOfOrder,
    WorkflowClosed,
    WorkflowIncomplete,
)
from common.wire.call import DEVICE_STEPS

#: Roles that may authorise a second-person step or override a device step.
AUTHORISERS = frozenset({"supervisor"})
#: Steps the cloud performs itself (with the data of the terminal's signed ID read).
CLOUD_STEPS = frozenset({"id_online_check"})
#: Steps no person can mark done: they pass on a verified result or a supervisor's override.
MACHINE_STEPS = frozenset(DEVICE_STEPS) | CLOUD_STEPS
#: Shortest written reason a supervisor's override is accepted with.
MIN_OVERRIDE_REASON = 4


class Outcome(StrEnum):
    COMPLETED = "completed"
    REJECTED = "rejected"
    ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    roles: frozenset[str]


@dataclass(frozen=True, slots=True)
class StepRecord:
    step: str
    at: dt.datetime
    actor: str
    passed: bool
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Workflow:
    session_id: str
    business: Business
    teller_id: str
    started_at: dt.datetime
    records: tuple[StepRecord, ...] = ()
    outcome: Outcome | None = None
    ended_at: dt.datetime | None = None

    @property
    def next_step(self) -> str | None:
        done = len(self.records)
        return self.business.steps[done] if done < len(self.business.steps) else None

    @property
    def outstanding(self) -> tuple[str, ...]:
        return self.business.steps[len(self.records) :]


def _aware(now: dt.datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("naive datetime; pass an aware UTC time")


def start(business: Business, session_id: str, teller_id: str, now: dt.datetime) -> Workflow:
    _aware(now)
    return Workflow(session_id, business, teller_id, now)


def hand_over(wf: Workflow, teller_id: str) -> Workflow:
    """A transferred customer's workflow goes on with the teller who took the call: the
    steps already walked stay, and from now on that teller is the serving one (the one
    who may not be the second person)."""
    if wf.outcome is not None:
        raise WorkflowClosed(f"session {wf.session_id} is closed; nothing to hand over")
    return dataclasses.replace(wf, teller_id=teller_id)


def _second_person(wf: Workflow, who: Actor | None, roles: frozenset[str], what: str) -> Actor:
    if who is None or who.id == wf.teller_id or not (who.roles & roles):
        raise SecondPersonRequired(
            f"{what} in session {wf.session_id} needs a second person with role "
            f"{' or '.join(sorted(roles))}, not the serving teller"
        )
    return who


def _next(wf: Workflow, step: str) -> None:
    if wf.outcome is not None:
        raise WorkflowClosed(f"session {wf.session_id} already {wf.outcome.value}")
    expected = wf.next_step
    if step != expected:
        raise StepOutOfOrder(
            f"session {wf.session_id}: next step is {expected!r}, cannot record {step!r}"
        )


def _append(
    wf: Workflow, step: str, actor: str, now: dt.datetime, passed: bool, info: dict[str, Any]
) -> tuple[Workflow, StepRecord]:
    record = StepRecord(step, now, actor, passed, info)
    new = dataclasses.replace(wf, records=(*wf.records, record))
    if not passed:
        new = dataclasses.replace(new, outcome=Outcome.REJECTED, ended_at=now)
    return new, record


def record_step(
    wf: Workflow,
    step: str,
    actor: Actor,
    now: dt.datetime,
    *,
    passed: bool = True,
    detail: Mapping[str, Any] | None = None,
) -> tuple[Workflow, StepRecord]:
    """A person records ``step``; returns the new workflow and the record for the timeline.

    A device or cloud step can only be marked failed this way (the teller ends the business),
    never done."""
    _aware(now)
    _next(wf, step)
    if step in MACHINE_STEPS and passed:
        raise DeviceStepOnly(
            f"{step} is done by the {'cloud' if step in CLOUD_STEPS else 'terminal'}: ask for "
            "it, or have a supervisor override it with a reason"
        )
    if STEPS[step].second_person:
        _second_person(wf, actor, AUTHORISERS, step)
    return _append(wf, step, actor.id, now, passed, dict(detail or {}))


def record_device_step(
    wf: Workflow, step: str, by: str, now: dt.datetime, detail: Mapping[str, Any]
) -> tuple[Workflow, StepRecord]:
    """A verified, passing result of a device step (or of the cloud's own check) passes
    ``step``; ``by`` names the signer (``terminal:<id>``) or ``cloud``."""
    _aware(now)
    _next(wf, step)
    if step not in MACHINE_STEPS:
        raise StepOutOfOrder(f"{step} is not a device step")
    return _append(wf, step, by, now, True, dict(detail))


def override(
    wf: Workflow, step: str, who: Actor, reason: str, now: dt.datetime
) -> tuple[Workflow, StepRecord]:
    """A supervisor (not the serving teller) passes a device step the device could not do."""
    _aware(now)
    _next(wf, step)
    if step not in MACHINE_STEPS:
        raise StepOutOfOrder(f"only a device step can be overridden, not {step!r}")
    _second_person(wf, who, AUTHORISERS, f"overriding {step}")
    reason = reason.strip()
    if len(reason) < MIN_OVERRIDE_REASON:
        raise ValueError(
            f"an override needs a written reason of at least {MIN_OVERRIDE_REASON} characters"
        )
    return _append(wf, step, who.id, now, True, {"override": True, "reason": reason})


def overridden(wf: Workflow) -> bool:
    """Whether any step passed by a supervisor's override (the session gets full review)."""
    return any(r.detail.get("override") for r in wf.records)


def liveness_score(wf: Workflow) -> float | None:
    """The terminal's passive-liveness score, as its signed verdict gave it (None: none)."""
    for record in wf.records:
        if record.step == "liveness" and isinstance(record.detail.get("score"), int | float):
            return float(record.detail["score"])
    return None


def complete(wf: Workflow, now: dt.datetime) -> Workflow:
    """Close the workflow as completed; every required step must have passed."""
    _aware(now)
    if wf.outcome is not None:
        raise WorkflowClosed(f"session {wf.session_id} already {wf.outcome.value}")
    if wf.outstanding:
        raise WorkflowIncomplete(
            f"session {wf.session_id} cannot complete: outstanding steps {list(wf.outstanding)}"
        )
    return dataclasses.replace(wf, outcome=Outcome.COMPLETED, ended_at=now)


def abandon(wf: Workflow, now: dt.datetime) -> Workflow:
    """The customer left or the call dropped: the workflow ends without completing."""
    _aware(now)
    if wf.outcome is not None:
        raise WorkflowClosed(f"session {wf.session_id} already {wf.outcome.value}")
    return dataclasses.replace(wf, outcome=Outcome.ABANDONED, ended_at=now)
