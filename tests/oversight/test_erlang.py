"""Erlang C against the worked examples in the domain reference (§2.6, recomputed there)."""

from __future__ import annotations

import math

import pytest

from cloud.ops import erlang


def test_300_calls_per_hour_360s() -> None:
    s = erlang.agents_needed(300, 3600, 360, target_sl=0.8, target_s=20)
    assert s.offered_erlangs == 30
    assert s.agents == 36
    assert s.p_wait == pytest.approx(0.212, abs=0.0005)
    assert s.service_level == pytest.approx(0.848, abs=0.0005)
    assert s.asa_s == pytest.approx(12.7, abs=0.05)
    assert s.occupancy == pytest.approx(0.833, abs=0.001)
    # One agent fewer misses the target: the answer is the smallest N.
    assert erlang.service_level(35, 30, 360, 20) < 0.8


def test_120_per_hour_480s_and_600_per_hour_420s() -> None:
    s = erlang.agents_needed(120, 3600, 480)
    assert (s.offered_erlangs, s.agents) == (16, 21)
    assert s.asa_s == pytest.approx(16.4, abs=0.05)
    s = erlang.agents_needed(600, 3600, 420)
    assert (s.offered_erlangs, s.agents) == (70, 78)
    assert s.service_level == pytest.approx(0.824, abs=0.0005)


def test_closed_form_agrees_with_recursion_and_edges() -> None:
    n, a = 12, 9.5
    top = a**n / math.factorial(n) * n / (n - a)
    closed = top / (sum(a**k / math.factorial(k) for k in range(n)) + top)
    assert erlang.erlang_c(n, a) == pytest.approx(closed, rel=1e-12)
    assert erlang.erlang_c(5, 5) == 1.0 and erlang.asa(5, 5, 300) == math.inf
    assert erlang.erlang_c(400, 350) < 0.5  # no overflow at large loads
    s = erlang.agents_needed(0, 1800, 300)
    assert s.agents == 0 and s.rostered == 0
    s = erlang.agents_needed(150, 1800, 360, shrinkage=0.3)  # 300/h in a half-hour
    assert s.agents == 36 and s.rostered == math.ceil(36 / 0.7)
    assert erlang.agents_needed(300, 3600, 360, max_occupancy=0.8).agents == 38
    with pytest.raises(ValueError):
        erlang.agents_needed(1, 0, 300)
