"""Is one group's rate different from another's? Fisher's exact test on a 2×2 table. Pure.

A staged model rollout compares the liveness sessions of the terminals that took the new
version (treatment) with a control group's: ``x1`` of ``n1`` sessions had the event (a pass,
a manual review, a quality overturn) against ``x2`` of ``n2``. Under the null hypothesis that
both share one rate, the number of events in the treatment given the table's margins follows
the hypergeometric distribution; Fisher's exact test sums the probabilities of the tables at
least as extreme as the one seen. Exact at any sample size (no normal approximation, which
misleads on the small counts of a canary), in the standard library only: the cloud does not
depend on scipy (``tests/fleet/test_significance.py`` checks this against
``scipy.stats.fisher_exact``).

``alternative``: ``"two-sided"`` (the rates differ, either way), ``"greater"`` (the
treatment's rate is higher) or ``"less"``.
"""

from __future__ import annotations

import math
from typing import Literal

Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES: tuple[Alternative, ...] = ("two-sided", "greater", "less")

#: Tables whose probability is within this relative margin of the observed one's count as
#: "as extreme" (floating-point ties), as scipy and R do.
_RELATIVE_TIE = 1 + 1e-7


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(
    x1: int, n1: int, x2: int, n2: int, alternative: Alternative = "two-sided"
) -> float:
    """The p-value of Fisher's exact test for ``x1``/``n1`` against ``x2``/``n2``.

    ValueError names the bad argument (negative counts, more events than trials, an unknown
    alternative). An empty side gives 1.0: no evidence of any difference."""
    for name, x, n in (("x1", x1, n1), ("x2", x2, n2)):
        if n < 0 or x < 0 or x > n:
            raise ValueError(f"{name}={x} of {n}: counts must satisfy 0 <= events <= trials")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, not {alternative!r}")
    k, total = x1 + x2, n1 + n2
    lo, hi = max(0, k - n2), min(k, n1)
    if n1 == 0 or n2 == 0 or lo == hi:
        return 1.0
    log_all = _log_choose(total, n1)

    def prob(a: int) -> float:
        return math.exp(_log_choose(k, a) + _log_choose(total - k, n1 - a) - log_all)

    if alternative == "greater":
        p = sum(prob(a) for a in range(x1, hi + 1))
    elif alternative == "less":
        p = sum(prob(a) for a in range(lo, x1 + 1))
    else:
        seen = prob(x1) * _RELATIVE_TIE
        p = sum(q for q in map(prob, range(lo, hi + 1)) if q <= seen)
    return min(1.0, p)
