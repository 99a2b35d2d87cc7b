"""The workflow rules: a session walks its business's steps in order, none skipped.

Pure functions over a frozen ``Workflow`` value; time is an argument. Callers (the teller
session service) persist the returned value and append each ``StepRecord`` to the session's
evidence timeline.

Rules:
- only the next required step may be recorded (no skipping, no repeats);
- a step marked ``second_person`` in ``catalogue.STEPS`` must be performed by someone other
  than the serving teller who holds the ``supervisor`` role;
- a passive-liveness score below the catalogue threshold passes only with a manual review by
  a second person (supervisor or reviewer) recorded on the step;
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
    SecondPersonRequired,
    StepOutOfOrder,
    WorkflowClosed,
    WorkflowIncomplete,
)

#: Roles that may authorise a second-person step, and that may clear a low liveness score.
AUTHORISERS = frozenset({"supervisor"})
LIVENESS_REVIEWERS = frozenset({"supervisor", "reviewer"})


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


def record_step(
    wf: Workflow,
    step: str,
    actor: Actor,
    now: dt.datetime,
    *,
    passed: bool = True,
    liveness_score: float | None = None,
    liveness_threshold: float = 80.0,
    reviewer: Actor | None = None,
    detail: Mapping[str, Any] | None = None,
) -> tuple[Workflow, StepRecord]:
    """Record ``step``; returns the new workflow and the record to put on the timeline."""
    _aware(now)
    if wf.outcome is not None:
        raise WorkflowClosed(f"session {wf.session_id} already {wf.outcome.value}")
    expected = wf.next_step
    if step != expected:
        raise StepOutOfOrder(
            f"session {wf.session_id}: next step is {expected!r}, cannot record {step!r}"
        )
    info: dict[str, Any] = dict(detail or {})
    if STEPS[step].second_person:
        _second_person(wf, actor, AUTHORISERS, step)
    if step == "liveness":
        if liveness_score is None:
            raise ValueError("the liveness step needs the liveness score")
        info["score"] = liveness_score
        info["threshold"] = liveness_threshold
        if liveness_score < liveness_threshold and passed:
            who = _second_person(wf, reviewer, LIVENESS_REVIEWERS, "a low liveness score")
            info["manual_review_by"] = who.id
    record = StepRecord(step, now, actor.id, passed, info)
    new = dataclasses.replace(wf, records=(*wf.records, record))
    if not passed:
        new = dataclasses.replace(new, outcome=Outcome.REJECTED, ended_at=now)
    return new, record


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
