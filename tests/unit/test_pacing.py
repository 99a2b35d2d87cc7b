"""The call's video pacer (``edge.teller.pacing``): a frame spread at the link's pace."""

from __future__ import annotations

import pytest
from aiortc.rtp import RtcpRrPacket, RtcpSenderInfo, RtcpSrPacket, RtpPacket

from edge.teller import pacing


def test_a_keyframe_burst_is_spread_at_the_rate() -> None:
    pacer = pacing.Pacer(256_000, burst_s=0.04, max_hold_s=0.5)  # 32 kB/s
    size = 1200 - pacing.WIRE_OVERHEAD  # 1200 bytes on the wire: 37.5 ms each
    waits = [pacer.wait(size, 10.0) for _ in range(8)]  # a keyframe's packets at once
    # Packet k goes when the k before it have left at the rate, less the 40 ms burst: the
    # first two at once, then one every 37.5 ms.
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([0.0375 * k - 0.04 for k in range(2, 8)])


def test_a_stream_under_the_rate_is_never_held() -> None:
    pacer = pacing.Pacer(256_000)
    # 15 frames a second of two 600-byte packets: 150 kbit/s on the wire, under 256.
    waits = [pacer.wait(600, k / 15 + dt) for k in range(150) for dt in (0.0, 0.0)]
    assert max(waits) == 0.0


def test_no_packet_is_held_longer_than_the_cap() -> None:
    pacer = pacing.Pacer(100_000, burst_s=0.0, max_hold_s=0.5)
    waits = [pacer.wait(1200, 0.0) for _ in range(40)]  # 4 s of link offered at once
    assert max(waits) == pytest.approx(0.5)
    # The backlog does not grow past the cap either: a second later the pacer is free again
    # after its half second, not after the 4 s offered.
    assert pacer.wait(1200, 1.1) == 0.0


def test_a_lower_rate_spreads_further() -> None:
    pacer = pacing.Pacer(256_000, burst_s=0.0)
    pacer.wait(958, 0.0)
    pacer.set_rate(128_000)
    pacer.wait(958, 0.0)
    assert pacer.wait(958, 0.0) == pytest.approx(1000 * 8 / 256_000 + 1000 * 8 / 128_000)
    with pytest.raises(ValueError, match="not > 0"):
        pacer.set_rate(0)
    with pytest.raises(ValueError, match="not > 0"):
        pacing.Pacer(0)


def test_rtp_is_told_from_rtcp_by_the_packets_own_bytes() -> None:
    rtp = RtpPacket(payload_type=96, sequence_number=7, timestamp=90_000, ssrc=0xDEADBEEF)
    rtp.payload = b"\x10" * 100
    assert pacing.ssrc_of(rtp.serialize()) == 0xDEADBEEF
    rtp.marker = 1  # the marker bit shares the payload type's byte
    assert pacing.ssrc_of(rtp.serialize()) == 0xDEADBEEF
    info = RtcpSenderInfo(ntp_timestamp=0, rtp_timestamp=0, packet_count=0, octet_count=0)
    sr = RtcpSrPacket(ssrc=0xDEADBEEF, sender_info=info)
    assert pacing.ssrc_of(bytes(sr)) is None
    rr = RtcpRrPacket(ssrc=0xDEADBEEF)
    assert pacing.ssrc_of(bytes(rr)) is None
    assert pacing.ssrc_of(b"\x80\x60\x00") is None


def test_install_refuses_a_connection_with_no_video_sender() -> None:
    class Pc:
        def getSenders(self) -> list[object]:
            return []

    with pytest.raises(RuntimeError, match="no video sender"):
        pacing.install(Pc(), 100_000)


def test_the_pace_is_the_share_on_a_lossy_link_and_never_under_the_encoder() -> None:
    from edge.vision.roi import encoder_settings

    lossy = encoder_settings(300, 0.03)  # the village link: the encoder keeps headroom
    assert pacing.pace_bps(300, 0.85, lossy.video_max_bps) == pytest.approx(255_000)
    clean = encoder_settings(400)  # a clean link: the encoder may use nearly all of it
    pace = pacing.pace_bps(400, 0.85, clean.video_max_bps)
    assert pace == pytest.approx(pacing.ENCODER_HEADROOM * clean.video_max_bps)
    assert pace > 400 * 0.85 * 1000
    with pytest.raises(ValueError, match="out of range"):
        pacing.pace_bps(300, 0.0, 1)
