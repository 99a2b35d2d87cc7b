"""Alarms the agent raises in its telemetry: counts of bad things within a recent window.

Pure: each call takes ``now`` (seconds on any one clock). The agent keeps one ``Window`` per
alarm and reports ``count(now)`` as a metric, so an alarm holds for ``span_s`` after the
last occurrence and then clears by itself; the cloud's alert rules (``fleet.alerts``) open
and clear alerts from those metrics.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Window:
    """Occurrences within the last ``span_s`` seconds."""

    span_s: float
    _times: deque[float] = field(default_factory=deque)

    def add(self, now: float) -> None:
        self._times.append(now)
        self._expire(now)

    def count(self, now: float) -> int:
        self._expire(now)
        return len(self._times)

    def _expire(self, now: float) -> None:
        while self._times and now - self._times[0] > self.span_s:
            self._times.popleft()


#: Metric names the agent reports (and ``fleet.alerts`` reads).
LINK_FLAPS = "link_flaps"  # link drops after a short time up, in the last FLAP_SPAN_S
LINK_BACKOFF = "link_backoff_s"  # the wait before the last reconnect attempt
SPOOL_REFUSED = "spool_refused"  # business events the full spool refused, last SPOOL_SPAN_S
FLAP_SPAN_S = 600.0
SPOOL_SPAN_S = 3600.0
