"""The rollout guard looks at every beat: its default test must keep the chance of *ever*
aborting a no-difference rollout under alpha, however many looks, and still abort on a
real rise. Pure: the guard's own `fleet.rollout.business_breach` on simulated outcome
counts (deterministic seed), and the always-valid test's parts against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import betaln
from scipy.stats import beta

from fleet import model_outcomes as mo
from fleet import rollout as ro
from fleet.significance import always_valid_p, log_e_value

ALPHA = 0.05
LOOKS = 60  # beats with new sessions
PER_LOOK = 10  # sessions per side per beat: up to 600 a side


def _plan(test: str, alternative: str = "two-sided") -> ro.Plan:
    return ro.Plan(
        canary=0, abort_alpha=ALPHA, control_group="control", min_sessions=20,
        abort_rates=("manual_review_rate",), abort_alternative=alternative, abort_test=test,
    )  # fmt: skip


def _looks_until_abort(plan: ro.Plan, treated: float, control: float, seed: int) -> int | None:
    """Feed both sides PER_LOOK sessions a beat (review with the given rates) and ask the
    guard at every beat, as the engine does; the beat it aborts at, or None."""
    rng = np.random.default_rng(seed)
    x1 = x2 = n = 0
    for look in range(1, LOOKS + 1):
        x1 += int(rng.binomial(PER_LOOK, treated))
        x2 += int(rng.binomial(PER_LOOK, control))
        n += PER_LOOK
        t = mo.Rates(sessions=n, passed=n - x1, manual_review=x1)
        c = mo.Rates(sessions=n, passed=n - x2, manual_review=x2)
        if ro.business_breach(plan, ro.Business(t, c))[0]:
            return look
    return None


def _false_abort_share(test: str, runs: int) -> float:
    plan = _plan(test)
    return sum(_looks_until_abort(plan, 0.1, 0.1, seed) is not None for seed in range(runs)) / runs


def test_repeated_looks_under_no_difference_abort_at_most_alpha() -> None:
    """400 rollouts whose new version is exactly the old (10% review rate both sides),
    looked at 60 times each. Fisher at every look aborts well over alpha of them (the
    earlier guard); the always-valid test under alpha."""
    runs = 400
    per_look = _false_abort_share("fisher-per-look", runs)
    always = _false_abort_share("always-valid", runs)
    assert per_look > 2 * ALPHA, per_look  # why the correction is needed
    assert always <= ALPHA, always


def test_a_real_rise_still_aborts() -> None:
    """Review rate 10% → 25% on the new version: every one of 50 rollouts aborts within
    the 60 looks, two-sided and worse-only; a fall is not 'worse'."""
    for alternative in ("two-sided", "worse"):
        plan = _plan("always-valid", alternative)
        looks = [_looks_until_abort(plan, 0.25, 0.1, seed) for seed in range(50)]
        assert all(look is not None for look in looks), (alternative, looks)
    fall = [_looks_until_abort(_plan("always-valid", "worse"), 0.02, 0.1, s) for s in range(20)]
    assert fall == [None] * 20


@pytest.mark.parametrize(
    "x1,n1,x2,n2", [(15, 30, 3, 30), (0, 20, 4, 20), (7, 200, 9, 150), (30, 50, 2, 40)]
)
def test_the_mixture_ratio_is_the_integral_it_stands_for(
    x1: int, n1: int, x2: int, n2: int
) -> None:
    """E's numerator (uniform mixture: a product of beta functions; one-sided: twice that
    times P(P1 > P2) under the posteriors) and its denominator (the null's best fit),
    recomputed with scipy."""
    mixture = betaln(x1 + 1, n1 - x1 + 1) + betaln(x2 + 1, n2 - x2 + 1)
    pooled = (x1 + x2) / (n1 + n2)

    def loglik(x: int, n: int, p: float) -> float:
        return float(x * np.log(p) if x else 0) + float((n - x) * np.log1p(-p) if n - x else 0)

    null = loglik(x1 + x2, n1 + n2, pooled)
    assert log_e_value(x1, n1, x2, n2) == pytest.approx(mixture - null, rel=1e-9, abs=1e-9)
    a1, b1, a2, b2 = x1 + 1, n1 - x1 + 1, x2 + 1, n2 - x2 + 1
    greater = quad(lambda p: beta.pdf(p, a1, b1) * beta.cdf(p, a2, b2), 0, 1, epsabs=1e-14)[0]
    less = quad(lambda p: beta.pdf(p, a2, b2) * beta.cdf(p, a1, b1), 0, 1, epsabs=1e-14)[0]
    best = loglik(x1, n1, x1 / n1) + loglik(x2, n2, x2 / n2)
    for alt, half, inside in (
        ("greater", greater, x1 / n1 <= x2 / n2),
        ("less", less, x1 / n1 >= x2 / n2),
    ):
        expected = math.log(2) + mixture + math.log(max(half, 1e-300)) - (best if inside else null)
        assert log_e_value(x1, n1, x2, n2, alt) == pytest.approx(expected, rel=1e-6, abs=1e-6)  # type: ignore[arg-type]


def test_always_valid_p_edges_and_refusals() -> None:
    assert always_valid_p(0, 0, 3, 10) == 1.0  # an empty side: no evidence
    assert always_valid_p(5, 30, 5, 30) == 1.0  # no difference at all
    assert always_valid_p(20, 40, 2, 40) == pytest.approx(0.00066372, rel=1e-3)
    with pytest.raises(ValueError, match="x1=5 of 4"):
        always_valid_p(5, 4, 0, 1)
    with pytest.raises(ValueError, match="alternative must be one of"):
        always_valid_p(1, 4, 0, 1, "worse")  # type: ignore[arg-type]
