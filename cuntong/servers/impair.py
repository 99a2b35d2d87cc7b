"""A weak link as a pure function of packets and time: rate limit, delay, jitter, loss, outages.

The village terminals sit on thin, lossy 4G; the machines that test and benchmark the call
have no ``netem`` in their kernel. ``Link`` models one direction of such a link the way
netem does with a rate set, in plain code that never reads a clock or touches a socket:

- **rate**: packets leave a bottleneck one after another at ``rate_kbps`` (serialisation
  time = size / rate); a packet that would wait longer than ``queue_ms`` is dropped
  (drop-tail, like a modem's buffer);
- **delay and jitter**: each packet then takes ``delay_ms`` ± a uniform ``jitter_ms``; the
  order is kept (a packet never overtakes the one before it), as netem does with a rate;
- **random loss**: each packet is lost with probability ``loss``;
- **bursty loss**: with ``burst_len`` > 1 the losses come in runs (Gilbert model: a "bad"
  state that loses every packet, entered so that the long-run loss is still ``loss`` and
  left after ``burst_len`` packets on average);
- **outages**: ``down(start, end)`` drops everything offered in that window.

``offer(packet, now, tag)`` takes a packet (or drops it, counted in ``stats``) and ``due(now)``
returns those whose delivery time has come. Randomness comes from an injected
``random.Random`` so a seeded run repeats exactly. ``udprelay.UdpRelay`` is the asyncio
shell that feeds real datagrams through two of these.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

__all__ = ["Impairment", "Link", "LinkStats"]


@dataclass(frozen=True, slots=True)
class Impairment:
    """One direction's impairment. ``rate_kbps=None`` means no rate limit."""

    rate_kbps: float | None = None
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    burst_len: float = 1.0
    queue_ms: float = 500.0

    def __post_init__(self) -> None:
        if self.rate_kbps is not None and self.rate_kbps <= 0:
            raise ValueError(f"rate_kbps must be positive, got {self.rate_kbps}")
        if self.delay_ms < 0 or self.jitter_ms < 0 or self.queue_ms < 0:
            raise ValueError("delay_ms, jitter_ms and queue_ms must not be negative")
        if self.jitter_ms > self.delay_ms:
            raise ValueError(f"jitter_ms {self.jitter_ms} exceeds delay_ms {self.delay_ms}")
        if not 0 <= self.loss < 1:
            raise ValueError(f"loss is a fraction in [0, 1), got {self.loss}")
        if self.burst_len < 1:
            raise ValueError(f"burst_len is a mean run length >= 1, got {self.burst_len}")


@dataclass(slots=True)
class LinkStats:
    offered: int = 0
    delivered: int = 0
    lost: int = 0  # random or bursty loss
    queue_dropped: int = 0  # the bottleneck's buffer was full
    outage_dropped: int = 0
    bytes_delivered: int = 0
    #: the bottleneck's queue: the longest any packet waited in it, and how many waited
    #: over 100 ms (what a sender's bursts cost every packet behind them)
    longest_queue_wait_s: float = 0.0
    queue_waits_over_100ms: int = 0


@dataclass
class Link:
    """One direction of an impaired link (see the module docstring)."""

    spec: Impairment
    rng: random.Random = field(default_factory=random.Random)
    stats: LinkStats = field(default_factory=LinkStats)
    _outages: list[tuple[float, float]] = field(default_factory=list)
    _bad: bool = False
    _free_at: float = 0.0  # when the bottleneck finishes sending what it holds
    _last_delivery: float = 0.0
    _seq: int = 0
    _queue: list[tuple[float, int, bytes, object]] = field(default_factory=list)

    def down(self, start: float, end: float) -> None:
        """Drop everything offered from ``start`` until ``end`` (an outage)."""
        if end <= start:
            raise ValueError(f"an outage ends after it starts ({start} .. {end})")
        self._outages.append((start, end))

    def _is_down(self, now: float) -> bool:
        return any(start <= now < end for start, end in self._outages)

    def _lose(self) -> bool:
        spec = self.spec
        if spec.loss == 0:
            return False
        if spec.burst_len <= 1:
            return self.rng.random() < spec.loss
        # Gilbert model with a loss-only bad state: leave it with p = 1/L, enter it with
        # p = loss / (L (1 - loss)), so the bad state's long-run share is exactly ``loss``.
        leave = 1 / spec.burst_len
        enter = spec.loss * leave / (1 - spec.loss)
        if self.rng.random() < (leave if self._bad else enter):
            self._bad = not self._bad
        return self._bad

    def offer(self, packet: bytes, now: float, tag: object = None) -> bool:
        """Take one packet at ``now`` (seconds); False when it was dropped. ``tag`` comes
        back with the packet from ``due`` (the relay's return address)."""
        spec, stats = self.spec, self.stats
        stats.offered += 1
        if self._is_down(now):
            stats.outage_dropped += 1
            return False
        if self._lose():
            stats.lost += 1
            return False
        leave = now
        if spec.rate_kbps is not None:
            start = max(now, self._free_at)
            if (start - now) * 1000 > spec.queue_ms:
                stats.queue_dropped += 1
                return False
            leave = start + len(packet) * 8 / (spec.rate_kbps * 1000)
            self._free_at = leave
            stats.longest_queue_wait_s = max(stats.longest_queue_wait_s, start - now)
            stats.queue_waits_over_100ms += start - now > 0.1
        jitter = self.rng.uniform(-spec.jitter_ms, spec.jitter_ms) if spec.jitter_ms else 0.0
        arrive = max(leave + (spec.delay_ms + jitter) / 1000, self._last_delivery)
        self._last_delivery = arrive
        self._seq += 1
        heapq.heappush(self._queue, (arrive, self._seq, packet, tag))
        return True

    def next_due(self) -> float | None:
        """When the next packet is to be delivered, or None when none is in flight."""
        return self._queue[0][0] if self._queue else None

    def due(self, now: float) -> list[tuple[bytes, object]]:
        """The packets (with their tags) whose delivery time has come, in order."""
        out = []
        while self._queue and self._queue[0][0] <= now:
            _, _, packet, tag = heapq.heappop(self._queue)
            self.stats.delivered += 1
            self.stats.bytes_delivered += len(packet)
            out.append((packet, tag))
        return out
