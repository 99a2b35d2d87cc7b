"""The retransmission limit's age reading (``edge.teller.retransmit``)."""

from __future__ import annotations

import pytest

from edge.teller import retransmit


def test_a_packet_age_is_read_from_rtp_timestamps_across_the_wrap() -> None:
    assert retransmit.packet_age_s(90_000 * 3, 90_000, 90_000) == pytest.approx(2.0)
    assert retransmit.packet_age_s(1_000, (1 << 32) - 44_000, 90_000) == pytest.approx(0.5)
    assert retransmit.packet_age_s(48_000, 48_000, 48_000) == 0.0


def test_install_refuses_a_sender_without_the_seams() -> None:
    class Sender:
        kind = "video"

    class Pc:
        def getSenders(self) -> list[Sender]:
            return [Sender()]

    with pytest.raises(RuntimeError, match="aiortc changed"):
        retransmit.install(Pc())


def test_the_budget_passes_a_trickle_and_cuts_a_burst_to_what_the_rate_allows() -> None:
    budget = retransmit.Budget(80_000, burst_s=0.25)  # 10 kB/s, 2.5 kB at once
    # 3% loss of ~15 packets/s: one 1.1 kB packet every two seconds always goes.
    assert all(budget.take(1100, t * 2.0) for t in range(10))
    # After an outage 40 packets are asked for at once: two fit, the rest are cut.
    sent = sum(budget.take(1100, 20.0) for _ in range(40))
    assert sent == 2
    # A second later the bucket holds 2.5 kB again (capped), not 10 kB.
    assert sum(budget.take(1100, 21.0) for _ in range(40)) == 2


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="not > 0"):
        retransmit.Budget(0)
