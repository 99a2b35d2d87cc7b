"""The call's video leaves at the link's pace, not in bursts, so the audio never waits behind it.

aiortc sends an encoded frame's packets back to back, as fast as the socket takes them. On a
300 kbit/s village link a keyframe (6-15 KB at 320x240) then sits in the link's queue for
160-400 ms, and every audio packet sent meanwhile waits behind it: the teller's audio
jitter buffer sees the delay jump by that much and conceals the gap (Chromium's NetEq
stretched 200-320 ms of audio in calls where no two audio packets in a row were lost;
Opus in-band FEC repairs single losses). A WebRTC stack's pacer spreads each frame over
time; aiortc has none (no transport-wide congestion control either: aiortc/aiortc#780).

``Pacer`` is the pure core: a leaky bucket in wire bytes (each packet's size plus the
headers it gains on the way: SRTP's tag, TURN's channel header, UDP and IPv4) that says how
long a packet must wait so the video stays under ``rate_bps`` on the wire, letting
``BURST_S`` of it go at once and never holding a packet longer than ``MAX_HOLD_S`` (an
encoder that outruns the pacer for longer is REMB's and the link estimate's to slow down;
holding more would only add delay).

``install(pc, rate_bps)`` paces the RTP of ``pc``'s video senders (their retransmissions
too: RTX goes out on its own SSRC through the same transport) at the DTLS transport every
sender of a bundled connection shares; audio and RTCP go out at once. Call it after
``setRemoteDescription`` (bundling picks the transport there) and before the media starts
(which needs ICE and DTLS to finish first). ``RoomPeer`` installs it with
``call_pacing_share`` of the configured link.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BURST_S",
    "ENCODER_HEADROOM",
    "MAX_HOLD_S",
    "WIRE_OVERHEAD",
    "Paced",
    "Pacer",
    "install",
    "pace_bps",
    "ssrc_of",
]

#: bytes each RTP packet gains on the wire: SRTP tag (10), TURN ChannelData (4), UDP (8),
#: IPv4 (20)
WIRE_OVERHEAD = 42
#: what may leave at once (one or two full packets at 300 kbit/s)
BURST_S = 0.04
#: the longest a packet is held
MAX_HOLD_S = 0.5
#: the pace never falls below the video encoder's ceiling times this (headers and
#: retransmissions on top of the payload), or a steady stream would be held, not smoothed
ENCODER_HEADROOM = 1.15


def pace_bps(link_kbps: float, share: float, video_max_bps: float) -> float:
    """The video's pace on the wire: ``share`` of the link, but never under what the video
    encoder may steadily send (``ENCODER_HEADROOM`` over its ceiling). On a lossy village
    link the encoder keeps a fifth of its budget free and the share binds (300 kbit/s at
    3%: 255 kbit/s against a 202 kbit/s ceiling); on a clean link the encoder may use
    nearly all of it (400 kbit/s: a 352 kbit/s ceiling), and pacing it at the share would
    hold every packet up to ``MAX_HOLD_S`` instead of only spreading the bursts."""
    if link_kbps <= 0 or not 0 < share <= 1:
        raise ValueError(f"pacing {share} of {link_kbps} kbit/s: out of range")
    return max(share * link_kbps * 1000, ENCODER_HEADROOM * video_max_bps)


class Pacer:
    """A leaky bucket: ``wait(size, now)`` is how long a packet of ``size`` bytes offered at
    ``now`` (seconds, monotonic) must wait before it goes; it is then counted as sent."""

    def __init__(
        self, rate_bps: float, burst_s: float = BURST_S, max_hold_s: float = MAX_HOLD_S
    ) -> None:
        if burst_s < 0 or max_hold_s <= 0:
            raise ValueError(f"pacing burst {burst_s} s / hold {max_hold_s} s: out of range")
        self.set_rate(rate_bps)
        self.burst_s, self.max_hold_s = burst_s, max_hold_s
        #: when the bytes counted so far will have left, at ``rate_bps``
        self.free_at = float("-inf")

    def wait(self, size: int, now: float) -> float:
        start = max(now, self.free_at - self.burst_s)
        hold = min(start - now, self.max_hold_s)
        self.free_at = max(self.free_at, now) + (size + WIRE_OVERHEAD) * 8 / self.rate_bps
        # an encoder running over the rate for long must not push the backlog without bound
        self.free_at = min(self.free_at, now + self.max_hold_s + self.burst_s)
        return hold

    def set_rate(self, rate_bps: float) -> None:
        if rate_bps <= 0:
            raise ValueError(f"pacing rate {rate_bps} bit/s: not > 0")
        self.rate_bps = rate_bps


@dataclass
class Paced:
    """What the pacer did to a peer connection's video."""

    pacer: Pacer
    packets: int = 0  # video RTP packets that went through it
    held: int = 0  # of them, held back
    held_s: float = 0.0  # the time they were held, together
    longest_s: float = 0.0


def ssrc_of(packet: bytes) -> int | None:
    """An RTP packet's SSRC; None for RTCP (payload types 64-95 after the marker bit, as
    RFC 5761 demultiplexes) and anything shorter than an RTP header."""
    if len(packet) < 12 or 64 <= (packet[1] & 0x7F) <= 95:
        return None
    return int.from_bytes(packet[8:12], "big")


def install(pc: Any, rate_bps: float) -> Paced:
    """Pace ``pc``'s video senders' RTP at ``rate_bps`` on the wire (see the module)."""
    video = [s for s in pc.getSenders() if s.kind == "video"]
    ssrcs = {ssrc for s in video for ssrc in (s._ssrc, getattr(s, "_rtx_ssrc", None)) if ssrc}
    transports = {id(s.transport): s.transport for s in pc.getSenders() if s.transport}
    if not video or not transports:
        raise RuntimeError("no video sender with a transport to pace")
    paced = Paced(Pacer(rate_bps))
    for transport in transports.values():
        if not hasattr(type(transport), "_send_rtp"):
            raise RuntimeError("aiortc changed: no RTCDtlsTransport._send_rtp to pace")
        transport._send_rtp = _paced(transport._send_rtp, ssrcs, paced)
    return paced


def _paced(send: Any, ssrcs: set[int], paced: Paced) -> Any:
    loop = asyncio.get_running_loop()

    async def paced_send(data: bytes) -> None:
        if ssrc_of(data) in ssrcs:
            paced.packets += 1
            hold = paced.pacer.wait(len(data), loop.time())
            if hold > 0:
                paced.held += 1
                paced.held_s += hold
                paced.longest_s = max(paced.longest_s, hold)
                await asyncio.sleep(hold)
        await send(data)

    return paced_send
