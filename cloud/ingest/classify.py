"""Pure ingest rules: which message is what, which are repeats, and what gets counted.

No I/O here; the consumer feeds bytes in and acts on the typed results.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from common import envelope, topics
from common.errors import PayloadTooLarge, WireError

Message = envelope.Telemetry | envelope.Event | envelope.Status


def classify(topic_name: str, payload: bytes, limit: int) -> Message:
    """Parse one message by its topic. Raises WireError (or PayloadTooLarge) on garbage."""
    try:
        parsed = topics.parse(topic_name)
    except ValueError as err:
        raise WireError(str(err)) from err
    tid = parsed.terminal_id
    match parsed.channel:
        case topics.Channel.TELEMETRY:
            return envelope.parse_telemetry(payload, tid, limit)
        case topics.Channel.EVENT:
            return envelope.parse_event(payload, tid, limit)
        case topics.Channel.STATUS:
            return envelope.parse_status(payload, tid, limit)
        case _:
            raise WireError(f"ingest does not consume {parsed.channel.value} messages")


@dataclass
class TelemetryDeduper:
    """Drops telemetry whose sequence number is not above the terminal's high-water mark.

    A terminal drains its spool in order, so on the telemetry topic its sequence numbers only
    rise; anything at or below the mark is a redelivery. Bounded: the least recently heard
    terminals are forgotten first (the store's own de-duplication is the second line).
    """

    capacity: int = 200_000
    _marks: OrderedDict[str, int] = field(default_factory=OrderedDict)

    def is_new(self, terminal_id: str, seq: int) -> bool:
        mark = self._marks.get(terminal_id)
        if mark is not None and seq <= mark:
            return False
        self._marks[terminal_id] = seq
        self._marks.move_to_end(terminal_id)
        if len(self._marks) > self.capacity:
            self._marks.popitem(last=False)
        return True

    def seed(self, terminal_id: str, seq: int) -> None:
        """Start from the mark stored in the database (after an ingest restart)."""
        if seq > self._marks.get(terminal_id, 0):
            self._marks[terminal_id] = seq


@dataclass
class IngestStats:
    """Counters the consumer exposes on /healthz and logs: nothing bad is silently lost."""

    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    points_written: int = 0
    write_errors: int = 0
    #: End-to-end lag (terminal timestamp → written to the store) of recent points, in ms.
    lags_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))

    def landed(self, sent_ms: list[int], now_s: float) -> None:
        self.points_written += len(sent_ms)
        now_ms = now_s * 1000
        self.lags_ms.extend(now_ms - ts for ts in sent_ms)

    def lag_percentiles(self) -> dict[str, float]:
        if not self.lags_ms:
            return {}
        ordered = sorted(self.lags_ms)

        def pick(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

        return {"p50": pick(0.50), "p99": pick(0.99), "max": round(ordered[-1], 1)}

    def reject(self, err: WireError) -> str:
        """Count a rejected message; returns the reason counted."""
        reason = "oversized" if isinstance(err, PayloadTooLarge) else "malformed"
        self.rejected[reason] += 1
        return reason

    def as_dict(self) -> dict[str, object]:
        return {
            "accepted": dict(self.accepted),
            "rejected": dict(self.rejected),
            "duplicates": self.duplicates,
            "points_written": self.points_written,
            "write_errors": self.write_errors,
            "lag_ms": self.lag_percentiles(),
        }
