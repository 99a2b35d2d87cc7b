"""Staged rollouts: canary, then waves, under a rate limit, a maintenance window and abort
thresholds (the model of AWS IoT Jobs rollouts and Eclipse hawkBit). Pure.

``step(rollout, plan, now)`` returns the next rollout and the actions to take — install on
these terminals, roll back those — and nothing else happens anywhere: the engine that calls
it only persists the result and turns actions into commands.

Phases::

    running ⇄ paused (operator)       running ─all waves done─▶ succeeded
    running ─threshold─▶ rolling_back ─all rolled back─▶ rolled_back   (plan.rollback)
    running ─threshold─▶ aborted                                       (no rollback)
    running | paused ─cancel─▶ cancelled (pending targets are cancelled, running ones finish)

A wave starts only when the one before it has finished and the thresholds still hold; the
thresholds are evaluated over every finished target once ``min_finished`` have finished
(or a wave completes), so a canary of ten can stop a rollout to ten thousand.

Besides device health, a rollout can abort on the liveness outcomes of the terminals that
took the new version (treatment) against a control group's (``Business``: the engine counts
the sessions, this module only compares), with either rule or both:

* ``abort_alpha``: a significance test. For each rate in ``abort_rates`` (pass rate,
  manual-review rate, quality-overturn rate) a test of the treatment's count against the
  control's (``fleet.significance``), at ``abort_alpha / len(abort_rates)`` each
  (Bonferroni across the rates). The engine looks at every beat, so the test is by default
  ``abort_test="always-valid"``: a mixture likelihood ratio whose p-value stays valid over
  any number of looks at the growing sample, so the chance that the guard *ever* aborts a
  rollout whose new version behaves exactly like the old stays under ``abort_alpha`` for
  the rollout's whole life. ``abort_test="fisher-per-look"`` is Fisher's exact test at
  every beat with no sequential correction (the earlier guard): more power on a small
  sample, but a false-abort chance over many looks well above ``abort_alpha``. Two-sided by
  default: a liveness model that suddenly passes more customers is as suspect as one that
  sends more to a teller; ``abort_alternative="worse"`` tests only the harmful direction
  (pass rate down, review and overturn rates up). A rate is tested once both sides have
  ``min_sessions`` in its denominator (sessions; for the overturn rate, passes a quality
  reviewer scored).
* ``abort_review_points``: the manual-review rate exceeds the control's by more than that
  many percentage points once both sides have ``min_sessions`` sessions (no test: a fixed
  business limit).

The fixed ``abort_review_points`` limit has no error rate to control; with
``abort_test="fisher-per-look"`` a long rollout takes many looks at the same growing sample
and its false-abort chance over its whole life is above ``abort_alpha``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from fleet.model_outcomes import Rates
from fleet.significance import always_valid_p, fisher_exact

#: The liveness rates a rollout can abort on (``Plan.abort_rates``), in the order they are
#: tested (an abort names the first that breaches). While a verdict is either "pass" or
#: "manual_review", the pass rate is one minus the manual-review rate: two-sided, both give
#: the same p-value, so the review rate, the one tellers feel, comes first.
RATES = ("manual_review_rate", "overturn_rate", "pass_rate")
#: ``Plan.abort_test``: the always-valid mixture test (default) or Fisher's at every look.
ABORT_TESTS = ("always-valid", "fisher-per-look")
_RATE_LABEL = {
    "pass_rate": "pass rate",
    "manual_review_rate": "manual-review rate",
    "overturn_rate": "QA-overturn rate",
}
_TEST_LABEL = {
    "always-valid": "always-valid (mixture likelihood ratio, any number of looks)",
    "fisher-per-look": "Fisher's exact",
}
#: The harmful direction of each rate, for ``abort_alternative="worse"``.
_WORSE = {"pass_rate": "less", "manual_review_rate": "greater", "overturn_rate": "greater"}


class Phase(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    ABORTED = "aborted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"


class T(StrEnum):
    """One target terminal's state in a rollout."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"


FINISHED = frozenset({T.SUCCEEDED, T.FAILED, T.TIMED_OUT})
SETTLED = FINISHED | {T.CANCELLED, T.ROLLED_BACK, T.ROLLBACK_FAILED}
FINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.ABORTED, Phase.ROLLED_BACK, Phase.CANCELLED})


@dataclass(frozen=True, slots=True)
class Window:
    """A daily maintenance window in local time, e.g. 22:00-06:00 at UTC+8 (may wrap)."""

    start: dt.time
    end: dt.time
    utc_offset_min: int = 480

    def open(self, now: dt.datetime) -> bool:
        local = (now + dt.timedelta(minutes=self.utc_offset_min)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    @classmethod
    def parse(cls, text: str, utc_offset_min: int = 480) -> Window:
        """'22:00-06:00'; ValueError otherwise."""
        try:
            a, b = text.split("-")
            return cls(
                dt.time.fromisoformat(a.strip()), dt.time.fromisoformat(b.strip()), utc_offset_min
            )
        except ValueError as err:
            raise ValueError(
                f"maintenance window must look like 22:00-06:00, not {text!r}"
            ) from err

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class Plan:
    canary: int = 1
    wave_size: int = 100
    max_per_minute: int = 1000
    window: Window | None = None
    abort_failure_pct: float = 10.0
    abort_timeout_pct: float = 10.0
    #: Thresholds are judged once this many targets have finished (or a wave completes).
    min_finished: int = 10
    rollback: bool = True
    #: Abort when the targets' manual-review rate exceeds ``control_group``'s by more than
    #: this many percentage points (None: no business threshold).
    abort_review_points: float | None = None
    control_group: str | None = None
    #: Business thresholds are judged once each side has this many liveness sessions (for
    #: the overturn rate: passes a quality reviewer scored).
    min_sessions: int = 20
    #: Abort when a rate in ``abort_rates`` differs from ``control_group``'s by Fisher's
    #: exact test at this family-wise level (None: no significance test).
    abort_alpha: float | None = None
    abort_rates: tuple[str, ...] = RATES
    #: "two-sided" (any difference) or "worse" (only the harmful direction of each rate).
    abort_alternative: str = "two-sided"
    #: "always-valid" (valid over every beat's look) or "fisher-per-look" (no correction).
    abort_test: str = "always-valid"

    def __post_init__(self) -> None:
        if self.canary < 0 or self.wave_size < 1 or self.max_per_minute < 1:
            raise ValueError("canary >= 0, wave_size >= 1 and max_per_minute >= 1 required")
        for pct in (self.abort_failure_pct, self.abort_timeout_pct):
            if not 0 <= pct <= 100:
                raise ValueError("abort thresholds are percentages (0-100)")
        if self.abort_review_points is not None:
            if not 0 <= self.abort_review_points <= 100:
                raise ValueError("abort_review_points is percentage points (0-100)")
            if not self.control_group:
                raise ValueError("abort_review_points needs a control_group to compare with")
        if self.abort_alpha is not None:
            if not 0 < self.abort_alpha < 1:
                raise ValueError(f"abort_alpha must be between 0 and 1, not {self.abort_alpha}")
            if not self.control_group:
                raise ValueError("abort_alpha needs a control_group to compare with")
        if not self.abort_rates or set(self.abort_rates) - set(RATES):
            raise ValueError(f"abort_rates must be a non-empty list from {list(RATES)}")
        if self.abort_alternative not in ("two-sided", "worse"):
            raise ValueError(
                f"abort_alternative must be 'two-sided' or 'worse', not {self.abort_alternative!r}"
            )
        if self.abort_test not in ABORT_TESTS:
            raise ValueError(
                f"abort_test must be one of {list(ABORT_TESTS)}, not {self.abort_test!r}"
            )
        if self.min_sessions < 1:
            raise ValueError("min_sessions must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return {
            "canary": self.canary,
            "wave_size": self.wave_size,
            "max_per_minute": self.max_per_minute,
            "window": str(self.window) if self.window else None,
            "utc_offset_min": self.window.utc_offset_min if self.window else 480,
            "abort_failure_pct": self.abort_failure_pct,
            "abort_timeout_pct": self.abort_timeout_pct,
            "min_finished": self.min_finished,
            "rollback": self.rollback,
            "abort_review_points": self.abort_review_points,
            "control_group": self.control_group,
            "min_sessions": self.min_sessions,
            "abort_alpha": self.abort_alpha,
            "abort_rates": list(self.abort_rates),
            "abort_alternative": self.abort_alternative,
            "abort_test": self.abort_test,
        }

    @property
    def watches_business(self) -> bool:
        """Whether the engine must count liveness sessions for this plan."""
        return self.abort_review_points is not None or self.abort_alpha is not None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Plan:
        values = dict(raw)
        window = values.pop("window", None)
        offset = values.pop("utc_offset_min", 480)
        if "abort_rates" in values:
            values["abort_rates"] = tuple(values["abort_rates"])
        return cls(**values, window=Window.parse(window, offset) if window else None)


@dataclass(frozen=True, slots=True)
class Business:
    """Liveness outcomes since the rollout started: on terminals that took the new version
    (treatment) and in the control group; counted by the engine."""

    treated: Rates
    control: Rates


@dataclass(frozen=True, slots=True)
class RateTest:
    """One rate of the treatment against the control's, as the significance guard saw it."""

    rate: str
    treated: int  # events (passes, manual reviews, overturns) ...
    treated_of: int  # ... of this many (sessions; scored passes for the overturn rate)
    control: int
    control_of: int
    #: The test's p-value (``test``); None while a side has fewer than ``min_sessions``.
    p_value: float | None
    alternative: str  # "two-sided" | "greater" | "less"
    level: float  # the level this rate is tested at (alpha / number of rates)
    alpha: float
    test: str = "always-valid"  # Plan.abort_test

    @property
    def breached(self) -> bool:
        return self.p_value is not None and self.p_value < self.level

    def describe(self, control_group: str | None) -> str:
        t, c = 100 * self.treated / self.treated_of, 100 * self.control / self.control_of
        return (
            f"{_RATE_LABEL[self.rate]} {t:.1f}% ({self.treated}/{self.treated_of}) vs control "
            f"group {control_group!r} {c:.1f}% ({self.control}/{self.control_of}): "
            f"{_TEST_LABEL[self.test]} p={self.p_value:.3g} ({self.alternative}) < "
            f"{self.level:.3g} (alpha {self.alpha:g} over {round(self.alpha / self.level)} rates)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "treated": self.treated,
            "treated_of": self.treated_of,
            "control": self.control,
            "control_of": self.control_of,
            "p_value": self.p_value,
            "alternative": self.alternative,
            "level": self.level,
            "alpha": self.alpha,
            "test": self.test,
            "breached": self.breached,
        }


def _counts(rate: str, r: Rates) -> tuple[int, int]:
    if rate == "pass_rate":
        return r.passed, r.sessions
    if rate == "manual_review_rate":
        return r.manual_review, r.sessions
    return r.overturned, r.qa_scored_passes


def rate_tests(plan: Plan, b: Business) -> list[RateTest]:
    """The significance guard's test of every rate in ``plan.abort_rates`` (empty without
    ``abort_alpha``); each carries both counts and its p-value, breached or not."""
    if plan.abort_alpha is None:
        return []
    level = plan.abort_alpha / len(plan.abort_rates)
    out = []
    for rate in plan.abort_rates:
        x1, n1 = _counts(rate, b.treated)
        x2, n2 = _counts(rate, b.control)
        side = "two-sided" if plan.abort_alternative == "two-sided" else _WORSE[rate]
        test = always_valid_p if plan.abort_test == "always-valid" else fisher_exact
        p = None if min(n1, n2) < plan.min_sessions else test(x1, n1, x2, n2, side)  # type: ignore[arg-type]
        out.append(
            RateTest(rate, x1, n1, x2, n2, p, side, level, plan.abort_alpha, plan.abort_test)
        )
    return out


def business_breach(plan: Plan, b: Business | None) -> tuple[str, RateTest | None]:
    """Why the liveness outcomes abort the rollout ("" if they do not), and the test that
    did it (None for the points rule)."""
    if b is None:
        return "", None
    for test in rate_tests(plan, b):
        if test.breached:
            return test.describe(plan.control_group), test
    return _review_points_breach(plan, b), None


@dataclass(frozen=True, slots=True)
class Target:
    wave: int
    state: T = T.PENDING
    started_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Rollout:
    phase: Phase
    wave: int
    targets: Mapping[str, Target]
    reason: str = ""
    waves: int = field(default=0)


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # "install" | "rollback"
    terminal_id: str


def plan_waves(terminal_ids: Iterable[str], plan: Plan) -> Rollout:
    """Wave 0 is the canary; the rest are chunks of ``wave_size`` in the given order."""
    ids = list(terminal_ids)
    targets: dict[str, Target] = {}
    for i, tid in enumerate(ids):
        wave = 0 if i < plan.canary else 1 + (i - plan.canary) // plan.wave_size
        if plan.canary == 0:
            wave -= 1
        targets[tid] = Target(max(wave, 0))
    waves = 1 + max((t.wave for t in targets.values()), default=0)
    return Rollout(Phase.RUNNING, 0, targets, waves=waves)


def counts(r: Rollout, wave: int | None = None) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in r.targets.values():
        if wave is None or t.wave == wave:
            out[t.state.value] = out.get(t.state.value, 0) + 1
    return out


def _breach(r: Rollout, plan: Plan, wave_done: bool) -> str:
    c = counts(r)
    failed = c.get(T.FAILED, 0)
    timed_out = c.get(T.TIMED_OUT, 0)
    finished = failed + timed_out + c.get(T.SUCCEEDED, 0)
    if finished == 0 or (finished < plan.min_finished and not wave_done):
        return ""
    if 100 * failed / finished > plan.abort_failure_pct:
        return f"failures {failed}/{finished} above {plan.abort_failure_pct}%"
    if 100 * timed_out / finished > plan.abort_timeout_pct:
        return f"timeouts {timed_out}/{finished} above {plan.abort_timeout_pct}%"
    return ""


def _review_points_breach(plan: Plan, b: Business) -> str:
    t, c = b.treated, b.control
    if plan.abort_review_points is None or min(t.sessions, c.sessions) < plan.min_sessions:
        return ""
    treated = 100 * t.manual_review / t.sessions
    control = 100 * c.manual_review / c.sessions
    if treated - control > plan.abort_review_points:
        return (
            f"manual review {treated:.1f}% ({t.manual_review}/{t.sessions}) is "
            f"{treated - control:.1f} points over control group {plan.control_group!r} "
            f"{control:.1f}% ({c.manual_review}/{c.sessions}), above "
            f"{plan.abort_review_points} points"
        )
    return ""


def step(
    r: Rollout, plan: Plan, now: dt.datetime, business: Business | None = None
) -> tuple[Rollout, list[Action]]:
    if r.phase is Phase.ROLLING_BACK:
        if all(t.state is not T.ROLLING_BACK for t in r.targets.values()):
            return replace(r, phase=Phase.ROLLED_BACK), []
        return r, []
    if r.phase is not Phase.RUNNING:
        return r, []
    wave_states = [t.state for t in r.targets.values() if t.wave == r.wave]
    wave_done = all(s in SETTLED for s in wave_states)
    reason = _breach(r, plan, wave_done) or business_breach(plan, business)[0]
    if reason:
        return _abort(r, plan, reason)
    if wave_done:
        if r.wave + 1 >= r.waves:
            return replace(r, phase=Phase.SUCCEEDED), []
        r = replace(r, wave=r.wave + 1)
    if plan.window is not None and not plan.window.open(now):
        return r, []
    minute_ago = now - dt.timedelta(minutes=1)
    recent = sum(1 for t in r.targets.values() if t.started_at and t.started_at > minute_ago)
    budget = plan.max_per_minute - recent
    if budget <= 0:
        return r, []
    targets = dict(r.targets)
    actions = []
    for tid, t in r.targets.items():
        if budget == 0:
            break
        if t.wave == r.wave and t.state is T.PENDING:
            targets[tid] = replace(t, state=T.RUNNING, started_at=now)
            actions.append(Action("install", tid))
            budget -= 1
    return replace(r, targets=targets), actions


def _abort(r: Rollout, plan: Plan, reason: str) -> tuple[Rollout, list[Action]]:
    targets = {
        tid: replace(t, state=T.CANCELLED) if t.state is T.PENDING else t
        for tid, t in r.targets.items()
    }
    if not plan.rollback:
        return replace(r, phase=Phase.ABORTED, targets=targets, reason=reason), []
    actions = []
    for tid, t in targets.items():
        if t.state is T.SUCCEEDED:
            targets[tid] = replace(t, state=T.ROLLING_BACK)
            actions.append(Action("rollback", tid))
    # Terminals still installing roll back themselves if their health check fails; a success
    # arriving after the abort is rolled back by ``record``.
    return replace(r, phase=Phase.ROLLING_BACK, targets=targets, reason=reason), actions


def record(r: Rollout, terminal_id: str, outcome: str) -> tuple[Rollout, list[Action]]:
    """A target's command finished: 'succeeded', 'failed' or 'timed_out'."""
    return record_all(r, [(terminal_id, outcome, None)])


def record_all(
    r: Rollout, outcomes: Iterable[tuple[str, str, T | None]]
) -> tuple[Rollout, list[Action]]:
    """``record`` for many finished commands at once, in order: ``(terminal, outcome,
    expected)``, an outcome ignored unless its target is in the ``expected`` state (if
    given). One copy of the target table, however many outcomes (a wave is thousands)."""
    targets = dict(r.targets)
    actions: list[Action] = []
    for terminal_id, outcome, expected in outcomes:
        t = targets.get(terminal_id)
        if t is None or (expected is not None and t.state is not expected):
            continue
        if t.state is T.RUNNING:
            new = T(outcome)
            if new is T.SUCCEEDED and r.phase is Phase.ROLLING_BACK:
                new = T.ROLLING_BACK
                actions.append(Action("rollback", terminal_id))
        elif t.state is T.ROLLING_BACK:
            new = T.ROLLED_BACK if outcome == T.SUCCEEDED else T.ROLLBACK_FAILED
        else:
            continue
        targets[terminal_id] = replace(t, state=new)
    return replace(r, targets=targets), actions


def pause(r: Rollout) -> Rollout:
    if r.phase is not Phase.RUNNING:
        raise ValueError(f"cannot pause a {r.phase} rollout")
    return replace(r, phase=Phase.PAUSED)


def resume(r: Rollout) -> Rollout:
    if r.phase is not Phase.PAUSED:
        raise ValueError(f"cannot resume a {r.phase} rollout")
    return replace(r, phase=Phase.RUNNING)


def cancel(r: Rollout) -> Rollout:
    if r.phase not in (Phase.RUNNING, Phase.PAUSED):
        raise ValueError(f"cannot cancel a {r.phase} rollout")
    targets = {
        tid: replace(t, state=T.CANCELLED) if t.state is T.PENDING else t
        for tid, t in r.targets.items()
    }
    return replace(r, phase=Phase.CANCELLED, targets=targets, reason="cancelled by operator")
