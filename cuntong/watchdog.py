"""The supervisor's end of the systemd notify protocol, as pure code (time is an argument).

A watched child gets ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` as systemd gives a
``Type=notify`` service with ``WatchdogSec=``; ``cuntong.supervisor`` receives its datagrams
and hands each one, parsed by ``parse``, to the child's ``Liveness`` with the time it was
read. ``Liveness.check(now)`` then says whether the child hung and what to do about it:

- **starting** (no ``READY=1`` yet): hung after ``Watchdog.start_s`` (systemd's
  ``TimeoutStartSec``), later if ``EXTEND_TIMEOUT_USEC=`` asks for more;
- **running** (after ``READY=1``): hung when no ``WATCHDOG=1`` came for ``interval_s``
  (``WATCHDOG=trigger`` makes it hung at once; ``WATCHDOG_USEC=`` changes the interval);
- **stopping** (after ``STOPPING=1``): hung when still running ``stop_s`` later
  (``EXTEND_TIMEOUT_USEC=`` extends it).

A hung child is sent SIGABRT (systemd's ``WatchdogSignal``; Python with faulthandler
dumps every thread's stack into the log), then SIGKILL ``abort_s`` later
(``TimeoutAbortSec``) if it is still there. ``STATUS=`` is kept for the log line. Other
keys (``RELOADING``, ``MAINPID``, ``FDSTORE`` …) are ignored: the agent sends none.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

#: Longest ``STATUS=`` text kept (a child's datagram is not trusted to be short).
STATUS_MAX = 200


class Action(enum.Enum):
    ABORT = "abort"  # SIGABRT: it hung
    KILL = "kill"  # SIGKILL: still there ``abort_s`` after SIGABRT


@dataclass(frozen=True)
class Watchdog:
    """How long a watched child may stay silent, in seconds."""

    #: Between ``WATCHDOG=1`` pings once ready (``WatchdogSec=``); the child pings at half.
    interval_s: float = 30.0
    #: From start to ``READY=1`` (``TimeoutStartSec=``).
    start_s: float = 120.0
    #: From ``STOPPING=1`` to exit (``TimeoutStopSec=``).
    stop_s: float = 30.0
    #: From SIGABRT to SIGKILL (``TimeoutAbortSec=``).
    abort_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("interval_s", "start_s", "stop_s", "abort_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not a positive duration")

    @property
    def usec(self) -> int:
        """``WATCHDOG_USEC`` for the child's environment."""
        return round(self.interval_s * 1_000_000)


def parse(datagram: bytes) -> dict[str, str]:
    """One notification: newline-separated ``KEY=VALUE`` lines. ValueError naming the first
    line that is not one (the whole datagram is then ignored, as systemd does)."""
    try:
        text = datagram.decode()
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 text: {datagram[:40]!r}") from err
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key or not key.replace("_", "").isalnum() or not key.isupper():
            raise ValueError(f"not a KEY=VALUE line: {line[:40]!r}")
        fields[key] = value
    return fields


def _usec(fields: Mapping[str, str], key: str) -> float | None:
    raw = fields.get(key, "")
    return int(raw) / 1_000_000 if raw.isdigit() else None


@dataclass
class Liveness:
    """What one run of a watched child has said, and whether it hung."""

    policy: Watchdog
    started_at: float
    interval_s: float = 0.0
    ready_at: float | None = None
    last_ping: float | None = None
    stopping_at: float | None = None
    #: A later deadline asked for with ``EXTEND_TIMEOUT_USEC`` (start and stop phases).
    extended_to: float | None = None
    triggered: bool = False
    status: str = ""
    #: When SIGABRT was sent, and why.
    aborted_at: float | None = None
    reason: str = ""
    killed: bool = False

    def __post_init__(self) -> None:
        self.interval_s = self.interval_s or self.policy.interval_s

    def heard(self, fields: Mapping[str, str], now: float) -> None:
        """Take in one parsed notification read at ``now``."""
        if fields.get("READY") == "1" and self.ready_at is None:
            self.ready_at = self.last_ping = now
            self.extended_to = None  # the start phase's extension ends with it
        if fields.get("STOPPING") == "1" and self.stopping_at is None:
            self.stopping_at, self.extended_to = now, None
        if (interval := _usec(fields, "WATCHDOG_USEC")) is not None and interval > 0:
            self.interval_s = interval
        watchdog = fields.get("WATCHDOG")
        if watchdog == "1":
            self.last_ping = max(self.last_ping or now, now)
        elif watchdog == "trigger":
            self.triggered = True
        if (extend := _usec(fields, "EXTEND_TIMEOUT_USEC")) is not None:
            self.extended_to = max(self.extended_to or now, now + extend)
        if "STATUS" in fields:
            self.status = fields["STATUS"][:STATUS_MAX]

    @property
    def alive_at(self) -> float:
        """The last sign of health: the last ping (or READY), else the start."""
        return self.last_ping if self.last_ping is not None else self.started_at

    def deadline(self) -> float:
        """When the child counts as hung if nothing more is heard."""
        if self.stopping_at is not None:
            due = self.stopping_at + self.policy.stop_s
        elif self.ready_at is None:
            due = self.started_at + self.policy.start_s
        else:
            return self.alive_at + self.interval_s  # extensions do not apply once running
        return max(due, self.extended_to or due)

    def check(self, now: float) -> Action | None:
        """What to do now: ABORT once it hung, KILL ``abort_s`` after that, else nothing.
        Each action is returned once; ``reason`` says why it hung."""
        if self.killed:
            return None
        if self.aborted_at is not None:
            if now >= self.aborted_at + self.policy.abort_s:
                self.killed = True
                return Action.KILL
            return None
        if self.triggered:
            self.reason = "asked for it (WATCHDOG=trigger)"
        elif now >= self.deadline():
            self.reason = self._why(now)
        else:
            return None
        self.aborted_at = now
        return Action.ABORT

    def _why(self, now: float) -> str:
        if self.stopping_at is not None:
            return f"still running {now - self.stopping_at:.1f}s after STOPPING=1"
        if self.ready_at is None:
            return f"no READY=1 within {now - self.started_at:.1f}s of starting"
        return f"no WATCHDOG=1 for {now - self.alive_at:.1f}s (watchdog {self.interval_s:g}s)"
