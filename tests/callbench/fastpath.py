"""RTP for the call load generator without aiortc's per-packet Python.

aiortc still sets every PeerConnection up and keeps it up: SDP, ICE, DTLS, the SRTP keys,
STUN consent, RTCP (reports, Janus's PLIs and NACKs). What it does per media packet, in
Python (RtpPacket objects, header extensions, history, pacing coroutines, jitter buffers),
costs ~7 % of a core per simulated call, so a Python load generator on the 2-core machine
ran out long before Janus did. Here the packets bypass that:

- **sending** (``Pump``): the clip is packetised once (aiortc's own VP8 payloader, Opus
  as is); one timer per process sends every stream's due packets: patch sequence number,
  timestamp and VP8 picture id into a prepared header, SRTP-protect with the connection's
  own libsrtp session, ``sendto`` on the ICE pair aiortc nominated. The PeerConnection's
  tracks (``PacedTrack``) never hand aiortc a frame, so its RTP loop sleeps; a PLI still
  reaches ``PacedTrack.restart`` (the next frame is the clip's keyframe).
- **receiving** (``Inbound``): the subscriber's UDP sockets hand SRTP packets straight to
  libsrtp (authenticated and decrypted, or counted as bad) and to per-stream counters:
  packets, loss from sequence gaps (RFC 3550 A.3), completed video frames (marker bit),
  the first complete keyframe. Everything else (STUN, DTLS, SRTCP) goes to aiortc as before.

The Janus side is untouched: every packet is still a real SRTP packet on a real ICE pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pylibsrtp
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from tests.callbench.media import AUDIO_RATE, AUDIO_SAMPLES, FPS, VIDEO_RATE, Clip

PICTURE_ID_OFFSET = 2  # VP8 descriptor: X byte, I byte, then the 15-bit picture id


@dataclass(frozen=True, slots=True)
class Packetised:
    """The clip as RTP payloads: per video frame its VP8 packets, per 20 ms one Opus packet."""

    video: list[list[bytes]]
    keyframe: list[bool]
    audio: list[bytes]

    @classmethod
    def of(cls, clip: Clip) -> Packetised:
        # Picture id 0 here; the pump writes the running id into every packet.
        video = [Vp8Encoder._packetize(frame, 0) for frame in clip.frames]
        return cls(video, list(clip.keyframes), list(clip.audio))


class PacedTrack(MediaStreamTrack):
    """A track whose media the pump sends: aiortc's sender waits on it forever.

    ``sent`` counts frames (video) or packets (audio) handed to the network; ``restart``
    is what aiortc calls on a keyframe request.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.sent = 0
        self.restart_requested = False
        self._never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        await self._never
        raise AssertionError("unreachable")

    def restart(self) -> None:
        self.restart_requested = True

    def stop(self) -> None:
        self._never.cancel()
        super().stop()


@dataclass
class _Outbound:
    """One sending stream: where its packets go and what comes next."""

    track: PacedTrack
    sender: RTCRtpSender
    pc: RTCPeerConnection
    period: float
    ticks: int
    next_due: float
    index: int = 0
    seq: int = 0
    timestamp: int = 0
    picture_id: int = 0
    restarted: float = 0.0
    # resolved once DTLS is up
    header: bytearray | None = None
    srtp: pylibsrtp.Session | None = None
    send: Callable[[bytes, Any], None] | None = None
    addr: Any = None

    def ready(self) -> bool:
        if self.header is not None:
            return True
        dtls = self.sender.transport
        pair = dtls.transport._connection._nominated.get(1)
        if dtls._tx_srtp is None or pair is None:
            return False
        transceiver = next(t for t in self.pc.getTransceivers() if t.sender is self.sender)
        extensions = HeaderExtensionsMap()
        extensions.configure(RTCRtpParameters(headerExtensions=transceiver._headerExtensions))
        payload_type = transceiver._codecs[0].payloadType
        template = RtpPacket(payload_type=payload_type, ssrc=self.sender._ssrc)
        template.extensions.mid = transceiver.mid
        self.header = bytearray(template.serialize(extensions))
        self.srtp, self.addr = dtls._tx_srtp, pair.remote_addr
        self.send = pair.protocol.transport.sendto
        return True

    def packet(self, payload: bytes, marker: bool) -> None:
        assert self.header is not None and self.srtp is not None and self.send is not None
        buf = self.header + payload
        buf[1] = (buf[1] & 0x7F) | (0x80 if marker else 0)
        struct.pack_into("!HI", buf, 2, self.seq, self.timestamp & 0xFFFFFFFF)
        if self.track.kind == "video":
            at = len(self.header) + PICTURE_ID_OFFSET
            struct.pack_into("!H", buf, at, 0x8000 | self.picture_id)
        self.send(self.srtp.protect(bytes(buf)), self.addr)
        self.seq = (self.seq + 1) & 0xFFFF


@dataclass
class Pump:
    """Sends every stream of this process on one timer; records how late it runs."""

    clip: Packetised
    tick: float = 0.004
    streams: list[_Outbound] = field(default_factory=list)
    #: per tick, how far behind the earliest due packet the pump was (s)
    lateness: list[float] = field(default_factory=list)
    #: streams that failed to send (their transport closed while the pump ran), and why
    dropped: list[str] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def add_clip(self, pc: RTCPeerConnection) -> None:
        """Publish the clip on ``pc``: an Opus track and a VP8 track the pump feeds."""
        now = time.monotonic()
        for kind, period, ticks in (("audio", AUDIO_SAMPLES / AUDIO_RATE, AUDIO_SAMPLES),
                                    ("video", 1 / FPS, VIDEO_RATE // FPS)):  # fmt: skip
            track = PacedTrack(kind)
            sender = pc.addTrack(track)
            sender._send_keyframe = track.restart  # type: ignore[method-assign]
            self.streams.append(_Outbound(track, sender, pc, period, ticks, now))
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            late = 0.0
            for stream in list(self.streams):
                if stream.pc.connectionState in ("closed", "failed"):
                    self.streams.remove(stream)
                elif stream.next_due <= now:
                    late = max(late, now - stream.next_due)
                    try:
                        if stream.ready():
                            self._send_due(stream, now)
                        else:  # not connected yet: start from now once it is
                            stream.next_due = now + stream.period
                    except Exception as err:  # its transport closed under us: that call only
                        self.streams.remove(stream)
                        self.dropped.append(f"{stream.track.kind}: {err!r}")
            self.lateness.append(late)
            await asyncio.sleep(self.tick)

    def _send_due(self, stream: _Outbound, now: float) -> None:
        with contextlib.suppress(OSError):  # a socket closing under us ends with the call
            while stream.next_due <= now:
                if stream.track.kind == "audio":
                    stream.packet(self.clip.audio[stream.index % len(self.clip.audio)], False)
                    stream.index += 1
                else:
                    self._send_frame(stream, now)
                stream.track.sent += 1
                stream.timestamp += stream.ticks
                stream.next_due += stream.period

    def _send_frame(self, stream: _Outbound, now: float) -> None:
        if stream.track.restart_requested:
            stream.track.restart_requested = False
            if now - stream.restarted > 0.3:  # several PLIs for one loss need one keyframe
                stream.index, stream.restarted = 0, now
        payloads = self.clip.video[stream.index]
        for i, payload in enumerate(payloads):
            stream.packet(payload, i == len(payloads) - 1)
        stream.index = (stream.index + 1) % len(self.clip.video)
        stream.picture_id = (stream.picture_id + 1) & 0x7FFF

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass(slots=True)
class _Stream:
    """Counters of one received RTP stream (one SSRC)."""

    kind: str
    first_seq: int
    max_seq: int  # extended: counts wraps
    received: int = 0
    frames: int = 0
    frame_is_key: bool = False

    @property
    def lost(self) -> int:
        return self.max_seq - self.first_seq + 1 - self.received


def vp8_starts_keyframe(payload: bytes) -> bool:
    """Whether this VP8 RTP payload is the first packet of a keyframe (RFC 7741 4.2, 4.3)."""
    if len(payload) < 2 or not payload[0] & 0x10 or payload[0] & 0x07:
        return False  # not the start of partition 0
    i = 1
    if payload[0] & 0x80:
        ext, i = payload[1], 2
        if ext & 0x80 and len(payload) > i:
            i += 2 if payload[i] & 0x80 else 1
        i += bool(ext & 0x40) + bool(ext & 0x30)
    return len(payload) > i and not payload[i] & 0x01


class RtpCounter:
    """Per-stream counters over decrypted RTP packets (no I/O): loss, frames, first picture."""

    def __init__(self, kinds: Callable[[int], str]) -> None:
        self.streams: dict[int, _Stream] = {}
        self.first_picture: float | None = None
        self._kinds = kinds  # payload type -> "audio" / "video" / "other"

    def count(self, p: bytes, now: float) -> bool:
        """Count one packet; True when it completes the first keyframe seen."""
        seq, ssrc = struct.unpack_from("!H4xI", p, 2)
        stream = self.streams.get(ssrc)
        if stream is None:
            stream = self.streams[ssrc] = _Stream(self._kinds(p[1] & 0x7F), seq, seq)
        else:
            delta = (seq - stream.max_seq) & 0xFFFF
            if 0 < delta < 0x8000:  # ahead (a duplicate or a late one is not)
                stream.max_seq += delta
        stream.received += 1
        if stream.kind != "video":
            return False
        offset = 12 + 4 * (p[0] & 0x0F)
        if p[0] & 0x10:
            offset += 4 + 4 * struct.unpack_from("!H", p, offset + 2)[0]
        if vp8_starts_keyframe(p[offset : offset + 8]):
            stream.frame_is_key = True
        if not p[1] & 0x80:
            return False
        stream.frames += 1  # marker: the frame's last packet
        was_key, stream.frame_is_key = stream.frame_is_key, False
        if was_key and self.first_picture is None:
            self.first_picture = now
            return True
        return False


class Inbound:
    """Counts what one subscriber PeerConnection receives, before aiortc would parse it."""

    def __init__(self, pc: RTCPeerConnection, on_picture: Callable[[float], None]) -> None:
        self.bad = 0  # packets libsrtp refused (authentication, replay)
        self._on_picture = on_picture
        transceivers = pc.getTransceivers()
        self._kinds = {c.payloadType: t.kind for t in transceivers for c in t._codecs}
        self.counter = RtpCounter(lambda pt: self._kinds.get(pt, "other"))
        self._dtls = transceivers[0].receiver.transport
        for protocol in self._dtls.transport._connection._protocols:
            protocol.datagram_received = self._wrap(protocol.datagram_received)

    @property
    def streams(self) -> dict[int, _Stream]:
        return self.counter.streams

    def _wrap(self, aiortc_path: Callable[[bytes, Any], None]) -> Callable[[bytes, Any], None]:
        def datagram_received(data: bytes, addr: Any) -> None:
            rx = self._dtls._rx_srtp
            # RTP: version 2, and a payload type outside the RTCP range (RFC 5761 4)
            if rx is None or len(data) < 12 or not 127 < data[0] < 192 or 192 <= data[1] <= 223:
                aiortc_path(data, addr)
                return
            try:
                plain = rx.unprotect(data)
            except pylibsrtp.Error:
                self.bad += 1
                return
            now = time.monotonic()
            if self.counter.count(plain, now):
                self._on_picture(now)

        return datagram_received
