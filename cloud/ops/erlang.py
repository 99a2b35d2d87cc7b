"""Erlang C (M/M/N, no abandonment): waiting probability, service level, ASA, staffing. Pure.

    A  = λ·AHT                       offered load in Erlangs; needs N > A
    Pw = C(N, A)                     probability a contact waits
    SL(t) = 1 − Pw·e^{−(N−A)·t/AHT}  share answered within t seconds
    ASA = Pw·AHT/(N − A)

C(N, A) is computed through the Erlang B recursion B(n) = A·B(n−1)/(n + A·B(n−1)),
C = N·B/(N − A·(1 − B)), which stays finite where A^N/N! would overflow (A in the hundreds).
Erlang C ignores abandonment, so it over-staffs slightly when customers hang up; shrinkage
(breaks, training, after-call paperwork away from the desk) is added on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def erlang_b(n: int, a: float) -> float:
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(n: int, a: float) -> float:
    """Probability of waiting with ``n`` agents and ``a`` Erlangs (1.0 if n ≤ a)."""
    if a <= 0:
        return 0.0
    if n <= a:
        return 1.0
    b = erlang_b(n, a)
    return n * b / (n - a * (1 - b))


def service_level(n: int, a: float, aht_s: float, target_s: float) -> float:
    if n <= a:
        return 0.0
    return 1 - erlang_c(n, a) * math.exp(-(n - a) * target_s / aht_s)


def asa(n: int, a: float, aht_s: float) -> float:
    """Average speed of answer in seconds (infinite if n ≤ a)."""
    if n <= a:
        return math.inf
    return erlang_c(n, a) * aht_s / (n - a)


@dataclass(frozen=True, slots=True)
class Staffing:
    agents: int
    offered_erlangs: float
    p_wait: float
    service_level: float
    asa_s: float
    occupancy: float
    #: Agents to roster once shrinkage is allowed for.
    rostered: int


def agents_needed(
    calls: float,
    period_s: float,
    aht_s: float,
    *,
    target_sl: float = 0.8,
    target_s: float = 20.0,
    max_occupancy: float = 1.0,
    shrinkage: float = 0.0,
) -> Staffing:
    """Fewest agents meeting the service-level target (and occupancy cap) for the period."""
    if period_s <= 0 or aht_s < 0 or calls < 0 or not 0 <= shrinkage < 1:
        raise ValueError("period > 0, calls ≥ 0, AHT ≥ 0 and 0 ≤ shrinkage < 1 required")
    a = calls * aht_s / period_s
    if a == 0:
        return Staffing(0, 0.0, 0.0, 1.0, 0.0, 0.0, 0)
    n = max(1, math.floor(a) + 1)
    while service_level(n, a, aht_s, target_s) < target_sl or a / n > max_occupancy:
        n += 1
    return Staffing(
        n,
        a,
        erlang_c(n, a),
        service_level(n, a, aht_s, target_s),
        asa(n, a, aht_s),
        a / n,
        math.ceil(n / (1 - shrinkage)),
    )
