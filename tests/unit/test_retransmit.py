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
