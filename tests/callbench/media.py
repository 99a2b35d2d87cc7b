"""Media for the call load test: a clip encoded once and replayed as packets, and a live
stamped camera for glass-to-glass latency.

A load test of Janus must not spend its CPU encoding: ``encode_clip`` makes a 640×360 VP8
clip and an Opus tone once, and ``ClipTrack``/``OpusTrack`` hand aiortc ``av.Packet``s,
which its RTCRtpSender packetises without an encoder. Timestamps are rewritten as the clip
loops, and a keyframe request (Janus sends a PLI when someone subscribes) restarts the clip
at its first frame, a keyframe, so a new viewer gets a picture at once as from a camera.

``CountingDecoder`` is the receiving half: installed with ``count_instead_of_decoding``,
every aiortc receiver in the process hands on the reassembled encoded frame (kind, size,
keyframe) instead of decoding it. Loss, jitter and frame counts still come from the real
RTP receiver; only the picture is never rebuilt.

``StampTrack`` is a live camera: each frame carries its capture time (wall clock, ms) as
a barcode, encoded by aiortc like a terminal's camera, for the glass-to-glass probe.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass

import av
import numpy as np
from aiortc import RTCPeerConnection, rtcrtpreceiver
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamTrack, VideoStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import VideoFrame

from tests.callbench import barcode

WIDTH, HEIGHT, FPS = 640, 360, 30
VIDEO_RATE = 90_000
AUDIO_RATE, AUDIO_SAMPLES = 48_000, 960  # 20 ms Opus frames


@dataclass(frozen=True, slots=True)
class Clip:
    """Encoded frames, in order; the first is a keyframe."""

    frames: list[bytes]
    keyframes: list[bool]
    audio: list[bytes]

    @property
    def video_kbps(self) -> float:
        return sum(map(len, self.frames)) * 8 / (len(self.frames) / FPS) / 1000


def _picture(n: int, rng: np.random.Generator) -> np.ndarray:
    """A yuv420p picture: a drifting gradient, a moving box, some grain, the frame number."""
    y = np.add.outer(np.arange(HEIGHT), np.arange(WIDTH) + 4 * n) % 200 + 28
    y = y.astype(np.int16) + rng.integers(-6, 7, size=(HEIGHT, WIDTH), dtype=np.int16)
    x0 = (12 * n) % (WIDTH - 80)
    y[120:200, x0 : x0 + 80] = 230
    luma = np.clip(y, 0, 255).astype(np.uint8)
    barcode.draw(luma, n)
    chroma = np.full((HEIGHT // 2, WIDTH), 128, np.uint8)
    return np.concatenate([luma, chroma])


def encode_clip(seconds: float = 10.0, kbps: int = 400, gop_seconds: float = 2.0) -> Clip:
    """Encode the clip once (VP8 at ``kbps``, keyframe every ``gop_seconds``) and a tone."""
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    enc.time_base = fractions.Fraction(1, FPS)
    enc.bit_rate, enc.gop_size = kbps * 1000, int(gop_seconds * FPS)
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                   "minrate": str(kbps * 1000), "maxrate": str(kbps * 1000)}  # fmt: skip
    rng = np.random.default_rng(5)
    frames: list[bytes] = []
    keys: list[bool] = []
    for n in range(int(seconds * FPS)):
        frame = VideoFrame.from_ndarray(_picture(n, rng), format="yuv420p")
        frame.pts = n
        for packet in enc.encode(frame):
            frames.append(bytes(packet))
            keys.append(bool(packet.is_keyframe))
    for packet in enc.encode(None):
        frames.append(bytes(packet))
        keys.append(bool(packet.is_keyframe))
    return Clip(frames, keys, encode_tone(seconds))


def encode_tone(seconds: float) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.format, enc.layout = AUDIO_RATE, "s16", "stereo"
    enc.bit_rate = 32_000
    enc.time_base = fractions.Fraction(1, AUDIO_RATE)
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    out: list[bytes] = []
    for i in range(0, len(pcm) - AUDIO_SAMPLES + 1, AUDIO_SAMPLES):
        chunk = np.repeat(pcm[i : i + AUDIO_SAMPLES], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = AUDIO_RATE, i
        out += [bytes(p) for p in enc.encode(frame)]
    return out


class _Paced(MediaStreamTrack):
    """Hands out one packet per ``period`` on the wall clock, timestamps counting up."""

    def __init__(self, period: float, ticks_per_packet: int, clock_rate: int) -> None:
        super().__init__()
        self._period, self._ticks = period, ticks_per_packet
        self._time_base = fractions.Fraction(1, clock_rate)
        self._start: float | None = None
        self._sent = 0

    @property
    def sent(self) -> int:
        """Packets handed to the sender so far."""
        return self._sent

    async def _next_pts(self) -> int:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._sent * self._period
        if (wait := due - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        self._sent += 1
        return (self._sent - 1) * self._ticks

    def _packet(self, data: bytes, pts: int) -> av.Packet:
        packet = av.Packet(data)
        packet.pts, packet.time_base = pts, self._time_base
        return packet


class ClipTrack(_Paced):
    """The clip's VP8 frames at 30 fps, looped; ``restart`` jumps to the first keyframe."""

    kind = "video"

    def __init__(self, clip: Clip) -> None:
        super().__init__(1 / FPS, VIDEO_RATE // FPS, VIDEO_RATE)
        self.clip = clip
        self._index = 0
        self._restarted = 0.0

    def restart(self) -> None:
        now = time.monotonic()
        if now - self._restarted > 0.3:  # several PLIs for one loss need one keyframe
            self._index, self._restarted = 0, now

    async def recv(self) -> av.Packet:  # type: ignore[override]
        pts = await self._next_pts()
        data = self.clip.frames[self._index]
        self._index = (self._index + 1) % len(self.clip.frames)
        return self._packet(data, pts)


class OpusTrack(_Paced):
    """The clip's Opus packets every 20 ms, looped."""

    kind = "audio"

    def __init__(self, clip: Clip) -> None:
        super().__init__(AUDIO_SAMPLES / AUDIO_RATE, AUDIO_SAMPLES, AUDIO_RATE)
        self.clip = clip

    async def recv(self) -> av.Packet:  # type: ignore[override]
        pts = await self._next_pts()
        return self._packet(self.clip.audio[(self._sent - 1) % len(self.clip.audio)], pts)


def add_clip(pc: RTCPeerConnection, clip: Clip) -> None:
    """Send the clip (audio, video) on ``pc``; the video answers keyframe requests."""
    pc.addTrack(OpusTrack(clip))
    video = ClipTrack(clip)
    sender = pc.addTrack(video)
    # aiortc asks its encoder for a keyframe on PLI/FIR; there is no encoder here, so
    # the request goes to the track, which restarts at a keyframe.
    sender._send_keyframe = video.restart  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class Assembled:
    """An encoded frame the receiver put back together (what a decoder would get)."""

    kind: str
    size: int
    keyframe: bool
    at: float


class CountingDecoder:
    """Stands in for aiortc's decoders: passes the assembled frame on, undecoded."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def decode(self, encoded: JitterFrame) -> list[Assembled]:
        # VP8 payload header: bit 0 of the first byte is 0 on a keyframe (RFC 6386 9.1).
        key = self.kind == "video" and bool(encoded.data) and not encoded.data[0] & 1
        return [Assembled(self.kind, len(encoded.data), key, time.monotonic())]


def count_instead_of_decoding() -> None:
    """Make every aiortc receiver in this process count frames instead of decoding them."""

    def factory(codec: RTCRtpCodecParameters) -> CountingDecoder:
        return CountingDecoder(codec.mimeType.split("/")[0].lower())

    rtcrtpreceiver.get_decoder = factory  # type: ignore[assignment]


def real_decoders() -> None:
    rtcrtpreceiver.get_decoder = get_decoder


class StampTrack(VideoStreamTrack):
    """A live 640×360 camera whose frames carry their capture time (ms) as a barcode."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(7)
        self._base = _picture(0, rng)
        self.sent = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.sent += 1
        picture = self._base.copy()
        picture[200:260, (pts // 3000 * 8) % (WIDTH - 60) :][:, :60] = 230  # some motion
        barcode.draw(picture[:HEIGHT], barcode.stamp_ms(time.time()))
        frame = VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame
