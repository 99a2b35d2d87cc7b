"""Noticing a misbehaving terminal (the AWS IoT Device Defender idea: per-device behaviour
counted over a window, an alert past a threshold). Pure: time is an argument.

Signals come from ingest (``IngestConsumer.on_signal``): each rejected message
(``malformed``, ``oversized``, ``bad_mac``; ``quarantined`` for a dead-lettered one) and
each presence change (``online`` / ``offline``, i.e. a connect that flaps); from the
broker's log (``fleet.brokerwatch``): each SUBSCRIBE and PUBLISH the broker refused
(``subscribe_refused``, ``publish_refused``); and from the Janus signalling gate
(``cloud.sessions.gate``): each join outside the terminal's grant's room
(``media_refused``).
``Watch.record(terminal_id, signal, now)`` keeps them for ``window``;
``Watch.conditions(now)`` names the terminals past a threshold with the evidence, as alert
conditions for ``fleet.alerting``. Rejected messages and refused requests count together
toward the ``rejects`` threshold.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, deque
from dataclasses import dataclass, field

#: Signals that are rejected messages.
MESSAGES = frozenset({"malformed", "oversized", "bad_mac", "quarantined"})
#: Signals that are requests the broker or the media gate refused.
REFUSALS = frozenset({"subscribe_refused", "publish_refused", "media_refused"})
#: Everything that counts toward the ``rejects`` threshold; the rest are presence changes.
REJECTS = MESSAGES | REFUSALS
FLAPS = frozenset({"online", "offline"})

#: The alert kind (``fleet.alerts.Kind.MISBEHAVING``).
KIND = "misbehaving"


@dataclass(frozen=True, slots=True)
class Thresholds:
    window: dt.timedelta
    #: Rejected messages within the window that raise the alert (0: never).
    rejects: int
    #: Online/offline changes within the window that raise the alert (0: never).
    flaps: int


@dataclass(frozen=True, slots=True)
class Evidence:
    terminal_id: str
    rejects: Counter[str]
    flaps: int

    def message(self, window: dt.timedelta) -> str:
        parts = []
        for kinds, label in ((MESSAGES, "rejected messages"), (REFUSALS, "refused requests")):
            counts = sorted((k, n) for k, n in self.rejects.items() if k in kinds)
            if counts:
                detail = ", ".join(f"{k} {n}" for k, n in counts)
                parts.append(f"{sum(n for _, n in counts)} {label} ({detail})")
        if self.flaps:
            parts.append(f"{self.flaps} online/offline changes")
        return f"{'; '.join(parts)} in {int(window.total_seconds())} s"


@dataclass
class Watch:
    thresholds: Thresholds
    #: Signals kept per terminal at most (a flood must not grow memory without bound).
    cap: int = 10_000
    _seen: dict[str, deque[tuple[dt.datetime, str]]] = field(default_factory=dict)

    def record(self, terminal_id: str, signal: str, now: dt.datetime) -> None:
        if signal not in REJECTS and signal not in FLAPS:
            raise ValueError(f"unknown misbehaviour signal {signal!r}")
        seen = self._seen.setdefault(terminal_id, deque(maxlen=self.cap))
        seen.append((now, signal))

    def evidence(self, terminal_id: str, now: dt.datetime) -> Evidence:
        seen = self._seen.get(terminal_id, deque())
        since = now - self.thresholds.window
        while seen and seen[0][0] < since:
            seen.popleft()
        rejects = Counter(s for _, s in seen if s in REJECTS)
        return Evidence(terminal_id, rejects, sum(1 for _, s in seen if s in FLAPS))

    def conditions(self, now: dt.datetime) -> dict[tuple[str, str, str], str]:
        """Alert conditions ``(kind, terminal_id, "") → message`` past a threshold."""
        t = self.thresholds
        out: dict[tuple[str, str, str], str] = {}
        for terminal_id in list(self._seen):
            ev = self.evidence(terminal_id, now)
            if not ev.rejects and not ev.flaps:
                del self._seen[terminal_id]  # quiet again: forget it
                continue
            too_many_rejects = t.rejects > 0 and sum(ev.rejects.values()) >= t.rejects
            too_many_flaps = t.flaps > 0 and ev.flaps >= t.flaps
            if too_many_rejects or too_many_flaps:
                out[(KIND, terminal_id, "")] = ev.message(t.window)
        return out
