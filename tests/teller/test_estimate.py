"""Queue position and expected wait, from observed handle times."""

from __future__ import annotations

import pytest

from cloud.sessions.errors import RoutingError
from cloud.sessions.estimate import HandleTimes, QueueStatus, queue_status
from cloud.sessions.routing import Board, TellerState
from cloud.sessions.skills import Skills

A, B = TellerState.AVAILABLE, TellerState.BUSY
MANDARIN = Skills.of({"cash_deposit": 4, "pension": 4}, {"cmn"})
SIGNER = Skills.of({"cash_deposit": 4}, {"cmn", "csl"})


def board(*tellers: tuple[str, Skills, TellerState]) -> Board:
    b = Board()
    for teller_id, skills, state in tellers:
        b.add_teller(teller_id, skills, 0)
        b.set_state(teller_id, state, 0)
    return b


def test_handle_times_prior_then_rolling_mean() -> None:
    times = HandleTimes(prior=300, window=3, min_samples=2)
    assert times.mean("pension") == 300
    times.observe("pension", 100)
    assert times.mean("pension") == 300  # one call is not enough to trust
    times.observe("pension", 200)
    assert times.mean("pension") == 150
    times.observe("pension", 300)
    times.observe("pension", 400)  # the window drops the 100
    assert times.mean("pension") == 300
    assert times.mean("cash_deposit") == 300
    with pytest.raises(ValueError):
        times.observe("pension", -1)


@pytest.mark.parametrize(
    ("tellers", "expected"),
    [
        # One teller busy since t=0, mean 300 s: the queue drains one per 300 s.
        ([("t1", B)], [(1, 300.0), (2, 600.0), (3, 900.0)]),
        # Two busy tellers halve it.
        ([("t1", B), ("t2", B)], [(1, 300.0), (2, 300.0), (3, 600.0)]),
    ],
)
def test_positions_and_waits(
    tellers: list[tuple[str, TellerState]], expected: list[tuple[int, float]]
) -> None:
    b = board(*[(t, MANDARIN, s) for t, s in tellers])
    for n in range(3):
        b.enqueue(f"r{n}", "cash_deposit", "cmn", 0)
    times = HandleTimes(prior=300)
    got = [queue_status(b, f"r{n}", 0, times) for n in range(3)]
    assert [(s.position, s.expected_wait) for s in got] == expected


def test_busy_teller_past_mean_still_needs_a_tail_and_time_moves_on() -> None:
    b = board(("t1", MANDARIN, B))
    b.enqueue("r", "cash_deposit", "cmn", 100)
    times = HandleTimes(prior=300)
    assert queue_status(b, "r", 100, times).expected_wait == 200
    assert queue_status(b, "r", 1000, times).expected_wait == 75  # a quarter of the mean


def test_learned_handle_times_change_the_estimate() -> None:
    b = board(("t1", MANDARIN, B))
    b.enqueue("r0", "pension", "cmn", 0)
    b.enqueue("r1", "cash_deposit", "cmn", 0)
    times = HandleTimes(prior=300, min_samples=1)
    times.observe("pension", 600)
    times.observe("cash_deposit", 120)
    # t1 frees at 0 + mean(cash_deposit)=120, then r0 (pension) holds it for 600 s.
    assert queue_status(b, "r1", 0, times) == QueueStatus(2, 720.0, 0)


def test_only_competing_requests_count_ahead() -> None:
    b = board(("mandarin", MANDARIN, B), ("signer", SIGNER, B))
    b.enqueue("pension", "pension", "cmn", 0)  # the signer cannot do pensions
    b.enqueue("deaf", "cash_deposit", "csl", 1)
    assert queue_status(b, "deaf", 1, HandleTimes()).position == 1
    b.enqueue("deposit", "cash_deposit", "cmn", 2)
    assert queue_status(b, "deposit", 2, HandleTimes()).position == 3


def test_no_teller_on_duty_means_no_estimate() -> None:
    b = board(("mandarin", MANDARIN, A))
    b.enqueue("deaf", "cash_deposit", "csl", 0)
    assert queue_status(b, "deaf", 0, HandleTimes()) == QueueStatus(1, None, 3)
    b.set_state("mandarin", TellerState.BREAK, 1)
    b.enqueue("plain", "cash_deposit", "cmn", 1)
    assert queue_status(b, "plain", 1, HandleTimes()).expected_wait is None


def test_offered_request_waits_no_more_and_unknown_is_refused() -> None:
    b = board(("t1", MANDARIN, A))
    b.enqueue("r0", "cash_deposit", "cmn", 0)
    b.enqueue("r1", "cash_deposit", "cmn", 0)
    b.dispatch(0)
    times = HandleTimes(prior=300)
    assert queue_status(b, "r0", 0, times) == QueueStatus(0, 0.0, 0)
    # t1 holds r0's offer: assumed busy for one mean call.
    assert queue_status(b, "r1", 0, times) == QueueStatus(1, 300.0, 0)
    with pytest.raises(RoutingError):
        queue_status(b, "nope", 0, times)
