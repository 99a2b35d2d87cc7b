"""The terminal's retransmissions: only what can still help and what the link can carry.
``RoomPeer`` installs the budget (below; ``call_retransmit_share``); the age limit is an
experiment, not on the terminal's call path: ``bench/weak_link.py --retransmit-limit``.

aiortc 1.16 answers every NACK with the packet if it is still in its 128-packet history.
After a 2 s outage on the village link Janus asks for everything the outage swallowed, and
the terminal sent 70-80 video packets 1.5 s old on average (up to 2.9 s) within a second of
the link coming back: about 1.9 s of a 300 kbit/s link, spent on frames no receiver will
show, while the link's queue overflowed and fresh frames waited behind them (the teller saw
a new frame 0.6-2.8 s after the outage ended).

``install(pc)`` makes each sender of a peer connection skip a retransmission whose packet
is older than ``MAX_AGE_S`` in media time (its RTP timestamp against the newest one sent).
An ordinary loss is NACKed within about a round trip (200 ms here) and still repaired; a
packet older than that is past the receivers' patience (the terminal's own video jitter
buffer gives a hole up after 550 ms). A receiver missing such a packet cannot decode what
follows until a keyframe, so a video sender that skips one sends a keyframe at once (at
most every ``KEYFRAME_EVERY_S``) instead of waiting for the receiver to ask: skipping
alone left Chromium without a new frame for 2.4-4.5 s after an outage.

Measured against the Chromium teller (docs/benchmarks/weak-link.md): the link's queue no
longer overflows after an outage, but Chromium did not show new frames sooner, so
``RoomPeer`` does not install the age limit.

``install(pc, rate_bps=…)`` adds (or, with ``max_age_s=0``, only sets) a budget: all of the
peer connection's retransmissions together may use ``rate_bps`` (a token bucket holding
``BURST_S`` of it). A 3% loss needs a few kbit/s of repairs and never meets it; the burst
after an outage (70-80 packets at once, more than the link's 500 ms queue holds) is cut to
what fits, the rest skipped as too costly, with a keyframe instead as above.

It reaches into aiortc's sender (``_retransmit`` and the private RTP timestamp), checked on
install: an aiortc that renames them makes ``install`` raise instead of silently resending
everything.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BURST_S",
    "KEYFRAME_EVERY_S",
    "MAX_AGE_S",
    "Budget",
    "Retransmissions",
    "install",
    "packet_age_s",
]

#: the oldest packet worth sending again (seconds of media)
MAX_AGE_S = 0.5
#: the most often a skipped retransmission brings on a keyframe
KEYFRAME_EVERY_S = 1.0
#: how much of the retransmission budget may go out at once (seconds of it)
BURST_S = 0.5
_HISTORY = "_RTCRtpSender__rtp_history"
_NEWEST = "_RTCRtpSender__rtp_timestamp"
_RATES = {"video": 90_000, "audio": 48_000}


def packet_age_s(newest_ts: int, packet_ts: int, clock_rate: int) -> float:
    """How far behind the newest RTP timestamp a packet's is, in seconds (32-bit wrap)."""
    return ((newest_ts - packet_ts) % (1 << 32)) / clock_rate


@dataclass
class Retransmissions:
    """What a peer connection's senders did with the NACKs they got."""

    sent: int = 0
    skipped: int = 0  # too old to help
    keyframes: int = 0  # sent because a skipped packet left the receivers without a picture
    over_budget: int = 0  # skipped: the retransmission budget was spent


class Budget:
    """A token bucket of bytes: ``rate_bps`` a second, at most ``burst_s`` of it at once."""

    def __init__(self, rate_bps: float, burst_s: float = BURST_S) -> None:
        if rate_bps <= 0 or burst_s <= 0:
            raise ValueError(f"retransmission budget {rate_bps} bit/s over {burst_s} s: not > 0")
        self.rate = rate_bps / 8
        self.capacity = self.rate * burst_s
        self.tokens = self.capacity
        self.at: float | None = None

    def take(self, size: int, now: float) -> bool:
        """Spend ``size`` bytes at ``now`` (monotonic s) if the bucket holds them."""
        if self.at is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if size > self.tokens:
            return False
        self.tokens -= size
        return True


def install(pc: Any, max_age_s: float = MAX_AGE_S, rate_bps: float = 0.0) -> Retransmissions:
    """Limit the retransmissions of every sender ``pc`` has now (call after ``addTrack``):
    none older than ``max_age_s`` (0: any age), all together within ``rate_bps`` (0: no
    budget)."""
    from aiortc.rtp import RTP_HISTORY_SIZE

    counts = Retransmissions()
    budget = Budget(rate_bps) if rate_bps > 0 else None
    for sender in pc.getSenders():
        cls = type(sender)
        seams = (hasattr(cls, "_retransmit"), hasattr(cls, "_send_keyframe"),
                 hasattr(sender, _HISTORY), hasattr(sender, _NEWEST))  # fmt: skip
        if not all(seams):
            raise RuntimeError(
                "aiortc changed: no _retransmit/_send_keyframe/__rtp_history/__rtp_timestamp "
                "on RTCRtpSender, so the retransmission limit cannot be installed"
            )
        sender._retransmit = _limited(sender, counts, max_age_s, budget, RTP_HISTORY_SIZE)
    return counts


def _limited(
    sender: Any, counts: Retransmissions, max_age_s: float, budget: Budget | None, history: int
) -> Any:
    original = type(sender)._retransmit
    rate = _RATES.get(sender.kind or "", 90_000)
    last_keyframe = -KEYFRAME_EVERY_S

    def instead() -> None:
        nonlocal last_keyframe
        now = time.monotonic()
        if sender.kind == "video" and now - last_keyframe >= KEYFRAME_EVERY_S:
            last_keyframe = now
            counts.keyframes += 1
            sender._send_keyframe()

    async def limited(seq: int) -> None:
        packet = getattr(sender, _HISTORY).get(seq % history)
        newest = getattr(sender, _NEWEST)
        known = packet is not None and packet.sequence_number == seq
        if (
            known
            and max_age_s > 0
            and newest is not None
            and packet_age_s(newest, packet.timestamp, rate) > max_age_s
        ):
            counts.skipped += 1
            instead()
            return
        # RTP header (12) + RTX's original sequence number (2) + the payload
        if (
            known
            and budget is not None
            and not budget.take(14 + len(packet.payload), time.monotonic())
        ):
            counts.over_budget += 1
            instead()
            return
        counts.sent += 1
        await original(sender, seq)

    return limited
