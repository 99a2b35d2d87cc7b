"""Receive-side jitter buffers that give up on a lost packet in bounded time.

aiortc's ``JitterBuffer`` hands out a frame only when every packet from its origin on is
present. A packet that never arrives (lost, and its NACK or retransmission lost too) stalls
it until ``capacity`` packets pile up behind the hole: 512 for video, which on a 300 kbit/s
village link is about 20 s of frozen picture, then the backlog bursts out at once. Measured
in ``bench/weak_link.py`` (docs/benchmarks/weak-link.md): this, not the encoder, was the
21 s freeze. For audio (16 slots, prefetch 4) each loss cost 100-300 ms of dropped audio
(aiortc/aiortc#543).

- ``VideoJitterBuffer`` keeps aiortc's frame assembly but times each hole with an injected
  clock: after ``max_wait_s`` (enough for a NACK to be answered) it drops the incomplete frame,
  asks for a keyframe (the receiver sends a PLI when ``add`` says so) and discards delta
  frames until a VP8 keyframe comes, asking again every ``pli_every_s`` (a PLI can be lost
  too). The decoder never sees a frame whose reference is missing.
- ``AudioJitterBuffer`` hands each Opus packet on as it arrives (one packet is one frame)
  and drops only late ones. Audio is not retransmitted, so waiting for a hole buys nothing;
  the decoder sees the jump in timestamps and conceals it
  (``edge.teller.receive.ConcealingOpusDecoder``: in-band FEC, else Opus PLC). The pacing
  is the playback's job (the sound device's buffer).

Plain code on packets and a clock: no sockets, no asyncio. ``edge.teller.receive`` installs
them on aiortc's receivers.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add, uint16_gt

__all__ = ["AudioJitterBuffer", "VideoJitterBuffer", "vp8_keyframe", "vp8_starts_frame"]

Clock = Callable[[], float]
#: how long a hole in the video may stall the picture before it is given up on: a NACK's
#: round trip over the village link (200 ms RTT), Janus's NACK delay and a queue; at 0.35 s
#: most skipped holes would still have been repaired (docs/benchmarks/weak-link.md)
VIDEO_MAX_WAIT_S = 0.55


def vp8_starts_frame(payload: bytes) -> bool:
    """The RTP payload (with its VP8 descriptor) is the first packet of a frame: S=1, PID=0."""
    return bool(payload) and payload[0] & 0x1F == 0x10


def vp8_keyframe(frame: bytes) -> bool:
    """The reassembled VP8 frame is a keyframe (RFC 6386 9.1: P bit of the frame tag clear)."""
    return bool(frame) and frame[0] & 0x01 == 0


class VideoJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer with a bound on how long a hole may stall it."""

    def __init__(
        self,
        clock: Clock,
        capacity: int = 512,
        max_wait_s: float | None = None,
        pli_every_s: float = 0.5,
    ) -> None:
        super().__init__(capacity, prefetch=0, is_video=True)
        self._clock = clock
        self.max_wait_s = VIDEO_MAX_WAIT_S if max_wait_s is None else max_wait_s
        self.pli_every_s = pli_every_s
        self._newest: int | None = None
        self._hole: int | None = None  # the sequence number of the hole being timed
        self._hole_since = 0.0
        self._want_keyframe = False
        self._last_pli = float("-inf")
        #: holes given up on, delta frames discarded while waiting for a keyframe, and how
        #: long each wait for a keyframe took (s)
        self.skips = 0
        self.discarded = 0
        self.keyframe_waits: list[float] = []
        self._skipped_at = 0.0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        now = self._clock()
        seq = packet.sequence_number
        if self._newest is None or uint16_gt(seq, self._newest):
            self._newest = seq
        pli, frame = super().add(packet)
        hole = self._first_hole()
        if hole is None or hole != self._hole:
            self._hole, self._hole_since = hole, now
        elif frame is None and now - self._hole_since >= self.max_wait_s:
            self._skip(hole)
            self.skips += 1
            self._skipped_at = now
            self._hole = None
            self._want_keyframe = True
            frame = self._remove_frame(seq)
        if frame is not None and self._want_keyframe:
            if vp8_keyframe(frame.data):
                self._want_keyframe = False
                self.keyframe_waits.append(now - self._skipped_at)
            else:
                self.discarded += 1
                frame = None
        if self._want_keyframe and now - self._last_pli >= self.pli_every_s:
            pli = True
        if pli:
            self._last_pli = now
        return pli, frame

    def _first_hole(self) -> int | None:
        """The first missing sequence number between the origin and the newest packet."""
        if self._origin is None or self._newest is None:
            return None
        span = uint16_add(self._newest, -self._origin)
        if span >= self._capacity:  # the newest is older than the origin: nothing to time
            return None
        for i in range(span):
            seq = uint16_add(self._origin, i)
            if self._packets[seq % self._capacity] is None:
                return seq
        return None

    def _skip(self, hole: int) -> None:
        """Drop everything before the first frame start after ``hole`` (the frame the hole
        broke, and the packets of frames whose start went with it)."""
        assert self._origin is not None and self._newest is not None
        end = uint16_add(self._newest, 1)
        passed_hole = False
        while self._origin != end:
            pos = self._origin % self._capacity
            packet = self._packets[pos]
            passed_hole = passed_hole or self._origin == hole
            if passed_hole and packet is not None and vp8_starts_frame(packet.payload):
                return
            self._packets[pos] = None
            self._origin = uint16_add(self._origin, 1)


class AudioJitterBuffer(JitterBuffer):
    """Each audio packet on at once; only a packet older than one already handed on is
    dropped. ``add`` never asks for a PLI."""

    def __init__(self, capacity: int = 16) -> None:
        super().__init__(capacity)
        self._last: int | None = None
        self.late = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._last is not None and not uint16_gt(seq, self._last):
            self.late += 1
            return False, None
        self._last = seq
        data = packet._data  # type: ignore[attr-defined]  # the receiver depayloaded it
        return False, JitterFrame(data=data, timestamp=packet.timestamp)
