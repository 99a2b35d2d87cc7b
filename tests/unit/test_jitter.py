"""The terminal's receive-side jitter buffers: a lost video packet costs a bounded wait and a
keyframe request, not 512 packets of frozen picture; audio packets pass at once.

Packets come from aiortc's own VP8 encoder and packetiser (the sender's code), depayloaded
as aiortc's receiver does; the clock is a plain number the test moves.
"""

from __future__ import annotations

import fractions
import itertools

import numpy as np
from aiortc.codecs.vpx import Vp8Encoder, vp8_depayload
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket
from av import VideoFrame

from edge.teller.jitter import AudioJitterBuffer, VideoJitterBuffer, vp8_keyframe


def vp8_packets(frames: int, keyframes: tuple[int, ...] = (0,)) -> list[RtpPacket]:
    """RTP packets of ``frames`` encoded frames (noise, so each spans several packets)."""
    encoder, rng, packets, seq = Vp8Encoder(), np.random.default_rng(1), [], 100
    for i in range(frames):
        frame = VideoFrame.from_ndarray(
            rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), format="rgb24"
        )
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90_000)
        payloads, ts = encoder.encode(frame, force_keyframe=i in keyframes)
        for n, payload in enumerate(payloads):
            p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts, payload=payload)
            p.marker = int(n == len(payloads) - 1)
            p._data = vp8_depayload(payload)  # type: ignore[attr-defined]
            packets.append(p)
            seq += 1
    return packets


def test_a_lost_video_packet_is_given_up_on_and_a_keyframe_requested() -> None:
    packets = vp8_packets(8, keyframes=(0, 5))
    starts = [i for i, p in enumerate(packets) if p.payload[0] & 0x10]
    lost = starts[2] + 1  # inside frame 2: frames 2-4 cannot be decoded, 5 is a keyframe
    assert lost < starts[3]
    now = [0.0]
    ours = VideoJitterBuffer(lambda: now[0], max_wait_s=0.3, pli_every_s=0.5)
    stock = JitterBuffer(capacity=512, is_video=True)
    out, stock_out, plis = [], [], 0
    for i, packet in enumerate(packets):
        now[0] = i * 0.05
        if i == lost:
            continue
        pli, frame = ours.add(packet)
        plis += pli
        out += [frame] if frame else []
        stock_frame = stock.add(packet)[1]
        stock_out += [stock_frame] if stock_frame else []
    # aiortc's own buffer is stuck behind the hole: only frames 0 and 1 ever come out.
    assert len(stock_out) == 2
    # Ours waits, skips, asks for a keyframe and resumes at the keyframe (frame 5) with
    # frames 5 and 6 (7 waits for a following packet), never a delta frame without its
    # reference.
    assert ours.skips == 1 and plis >= 1
    assert [vp8_keyframe(f.data) for f in out] == [True, False, True, False]
    assert ours.discarded == 2  # frames 3 and 4


def test_the_keyframe_request_is_repeated_while_none_comes() -> None:
    packets = vp8_packets(30)  # one keyframe only, at the start
    now, plis = [0.0], []
    jb = VideoJitterBuffer(lambda: now[0], max_wait_s=0.3, pli_every_s=0.5)
    for i, packet in enumerate(packets):
        now[0] = i * 0.05
        if i == 5:
            continue
        if jb.add(packet)[0]:
            plis.append(now[0])
    assert jb.skips == 1 and len(plis) >= 2
    assert all(b - a >= 0.5 for a, b in itertools.pairwise(plis))  # rate-limited


def test_a_packet_late_within_the_wait_is_not_given_up_on() -> None:
    packets = vp8_packets(4)
    now = [0.0]
    jb = VideoJitterBuffer(lambda: now[0], max_wait_s=0.3)
    late = packets.pop(3)
    out = []
    for i, packet in enumerate([*packets[:6], late, *packets[6:]]):
        now[0] = i * 0.02
        frame = jb.add(packet)[1]
        out += [frame] if frame else []
    assert jb.skips == 0 and len(out) == 3


def test_audio_packets_pass_at_once_and_late_ones_are_dropped() -> None:
    jb = AudioJitterBuffer()
    packets = []
    for seq in (1, 2, 4, 3, 5):
        p = RtpPacket(payload_type=111, sequence_number=seq, timestamp=seq * 960)
        p._data = bytes([seq])  # type: ignore[attr-defined]
        packets.append(p)
    out = [jb.add(p)[1] for p in packets]
    assert [f.timestamp // 960 if f else None for f in out] == [1, 2, 4, None, 5]
    assert jb.late == 1
