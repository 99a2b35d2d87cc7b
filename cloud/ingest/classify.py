"""Pure ingest rules: which message is what, which are repeats, and what gets counted.

No I/O here; the consumer feeds bytes in and acts on the typed results.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from enum import Enum

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


#: Bytes of one dead-lettered message kept in the table (the rest is cut, its size and
#: digest noted). A terminal can publish up to the broker's limit; an operator needs the head.
MAX_KEPT_BYTES = 1024 * 1024
#: Largest message whose sequence number ingest still reads to confirm it (oversized ones
#: included): the spool's rows are at most this big in practice.
MAX_SALVAGE_BYTES = 4 * 1024 * 1024


def kept_payload(payload: bytes) -> tuple[str, str]:
    """How a dead-lettered message is kept: ``(text, note)``. UTF-8 text without NUL is
    kept as it is; anything else as ``base64:`` and the exact bytes (a text column holds
    neither invalid UTF-8 nor NUL). ``note`` says what was done, for the row's detail."""
    kept = payload[:MAX_KEPT_BYTES]
    note = ""
    if len(payload) > MAX_KEPT_BYTES:
        digest = hashlib.sha256(payload).hexdigest()
        note = f"; first {MAX_KEPT_BYTES} of {len(payload)} bytes kept, sha256 {digest}"
    try:
        text: str | None = kept.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        return "base64:" + base64.b64encode(kept).decode(), "; payload kept as base64" + note
    return text, note


@dataclass(frozen=True, slots=True)
class Window:
    """How far a terminal's own timestamp may stray from the moment ingest received it.

    The past side is long (a terminal's spool drains a day or more of backlog after an
    outage); the future side is short (clock skew only). A timestamp outside is not
    trusted: the message is quarantined with the receive time instead.
    """

    past_ms: int
    future_ms: int

    def problem(self, ts_ms: int, now_ms: int) -> str | None:
        """Why ``ts_ms`` cannot be trusted at ``now_ms``, or None if it can."""
        if ts_ms > now_ms + self.future_ms:
            return f"ts {ts_ms} is {ts_ms - now_ms} ms ahead of receive time {now_ms}"
        if ts_ms < now_ms - self.past_ms:
            return f"ts {ts_ms} is {now_ms - ts_ms} ms behind receive time {now_ms}"
        return None


class Seen(Enum):
    NEW = "new"
    REPEAT = "repeat"
    #: A sequence no spool can have reached, or a jump far above the mark not (yet)
    #: confirmed by the next message: never trusted, or one forged number would make all the
    #: terminal's real telemetry look like repeats.
    JUMP = "jump"


#: A fresh spool numbers its messages from its creation time in ms × 1000
#: (``edge.spool``), one more per message: no honest sequence is above the clock × 1000.
SEQ_PER_MS = 1000


@dataclass
class TelemetryDeduper:
    """Drops telemetry whose sequence number is not above the terminal's high-water mark.

    A terminal drains its spool in order, so on the telemetry topic its sequence numbers only
    rise; anything at or below the mark is a redelivery. Bounded: the least recently heard
    terminals are forgotten first (the store's own de-duplication is the second line).

    The mark only moves to believable numbers: never above the receive clock × 1000 (plus
    the clock-skew allowance), and never more than ``max_step`` above the mark unless the
    next message confirms the jump (a wiped spool restarts its numbers at the clock).
    """

    capacity: int = 200_000
    #: Largest rise over the mark a sequence may take unconfirmed.
    max_step: int = 10**9
    #: Clock skew allowed to a terminal, as for timestamps.
    future_ms: int = 600_000
    _marks: OrderedDict[str, int] = field(default_factory=OrderedDict)
    #: Per terminal, the last unconfirmed jump.
    _jumps: dict[str, int] = field(default_factory=dict)

    def is_new(self, terminal_id: str, seq: int, now_ms: int) -> bool:
        return self.check(terminal_id, seq, now_ms) is Seen.NEW

    def check(self, terminal_id: str, seq: int, now_ms: int) -> Seen:
        """Classify ``seq`` received at ``now_ms``; if new, move the mark to it."""
        mark = self._marks.get(terminal_id)
        if mark is not None and seq <= mark:
            return Seen.REPEAT
        if seq > (now_ms + self.future_ms) * SEQ_PER_MS:
            return Seen.JUMP
        if mark is not None and seq - mark > self.max_step:
            jump = self._jumps.get(terminal_id)
            if jump is None or not jump < seq <= jump + self.max_step:
                if len(self._jumps) >= self.capacity:
                    self._jumps.clear()
                self._jumps[terminal_id] = seq
                return Seen.JUMP
        self._jumps.pop(terminal_id, None)
        self._marks[terminal_id] = seq
        self._marks.move_to_end(terminal_id)
        if len(self._marks) > self.capacity:
            self._marks.popitem(last=False)
        return Seen.NEW

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
    #: Storage confirmations to terminals that could not be published (they re-send).
    confirm_errors: int = 0
    #: Messages kept in the dead-letter table instead of being stored (by reason kind).
    dead_lettered: Counter[str] = field(default_factory=Counter)
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
            "confirm_errors": self.confirm_errors,
            "dead_lettered": dict(self.dead_lettered),
            "lag_ms": self.lag_percentiles(),
        }
