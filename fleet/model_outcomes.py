"""Business outcomes per liveness model version, from real sessions. Pure.

Each teller session whose terminal sent a liveness verdict (`edge.vision.verdict.VisionResult`,
stored by the cloud as it arrived) is one `Outcome`: the terminal, when, every model version
the verdict names (`name@version`), the decision, and the quality-inspection (质检) result
if a reviewer scored the session. Per model version, group and period, `summarise` gives:

    pass rate            decision "pass" / sessions
    manual-review rate   decision "manual_review" / sessions
    overturn rate        sessions the check passed that a quality reviewer failed / sessions
                         the check passed that a reviewer scored (None until one is scored)

`review_points_over_control` is the business threshold a staged model rollout can abort on
(`fleet.rollout.Plan.abort_review_points`): how many percentage points the manual-review rate
of the rollout's terminals exceeds the control group's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Outcome:
    terminal_id: str
    at: dt.datetime
    models: tuple[str, ...]  # name@version of every model the verdict names
    decision: str  # "pass" | "manual_review"
    qa_passed: bool | None = None  # the quality reviewer's verdict, if scored


def outcome(
    terminal_id: str, at: dt.datetime, verdict: Mapping[str, Any], qa_passed: bool | None
) -> Outcome | None:
    """The outcome of one session from its stored verdict; None if the verdict is not one."""
    models, decision = verdict.get("models"), verdict.get("decision")
    if not isinstance(models, Mapping) or decision not in ("pass", "manual_review"):
        return None
    labels = tuple(sorted(f"{name}@{version}" for name, version in models.items()))
    return Outcome(terminal_id, at, labels, str(decision), qa_passed)


@dataclass(frozen=True, slots=True)
class Rates:
    sessions: int = 0
    passed: int = 0
    manual_review: int = 0
    qa_scored_passes: int = 0  # sessions the check passed that a reviewer scored
    overturned: int = 0  # ... and the reviewer failed

    def add(self, o: Outcome) -> Rates:
        scored = o.decision == "pass" and o.qa_passed is not None
        return Rates(
            self.sessions + 1,
            self.passed + (o.decision == "pass"),
            self.manual_review + (o.decision == "manual_review"),
            self.qa_scored_passes + scored,
            self.overturned + (scored and o.qa_passed is False),
        )

    @property
    def pass_rate(self) -> float | None:
        return self.passed / self.sessions if self.sessions else None

    @property
    def review_rate(self) -> float | None:
        return self.manual_review / self.sessions if self.sessions else None

    @property
    def overturn_rate(self) -> float | None:
        return self.overturned / self.qa_scored_passes if self.qa_scored_passes else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "pass_rate": self.pass_rate,
            "manual_review_rate": self.review_rate,
            "qa_scored_passes": self.qa_scored_passes,
            "overturn_rate": self.overturn_rate,
        }


def rates(outcomes: Iterable[Outcome]) -> Rates:
    r = Rates()
    for o in outcomes:
        r = r.add(o)
    return r


def period_start(at: dt.datetime, period: dt.timedelta) -> dt.datetime:
    """The start of the UTC period (a whole number of `period`s since the epoch) holding `at`."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + ((at - epoch) // period) * period


def summarise(
    outcomes: Iterable[Outcome],
    groups: Mapping[str, Iterable[str]],
    period: dt.timedelta = dt.timedelta(days=1),
) -> list[dict[str, Any]]:
    """Rates per (model version, group, period), sorted; `groups` maps a group name to its
    terminal ids, and every outcome also counts in the group "all"."""
    member_of: dict[str, list[str]] = {}
    for name, ids in groups.items():
        for tid in ids:
            member_of.setdefault(tid, []).append(name)
    table: dict[tuple[str, str, dt.datetime], Rates] = {}
    for o in outcomes:
        start = period_start(o.at, period)
        for group in ("all", *member_of.get(o.terminal_id, ())):
            for model in o.models:
                key = (model, group, start)
                table[key] = table.get(key, Rates()).add(o)
    return [
        {"model": m, "group": g, "period_start": s.isoformat(), **r.to_dict()}
        for (m, g, s), r in sorted(table.items())
    ]


def review_points_over_control(treatment: Rates, control: Rates) -> float | None:
    """Manual-review rate of the treatment minus the control's, in percentage points; None
    while either side has no session."""
    if treatment.review_rate is None or control.review_rate is None:
        return None
    return 100 * (treatment.review_rate - control.review_rate)
