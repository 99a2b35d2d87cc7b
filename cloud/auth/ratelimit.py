"""Sliding-window rate limiter (pure; time is an argument).

Used for login (per username and per client address, so a password guesser is slowed
whichever they vary) and enrolment (per client address). In-process: each API process keeps
its own windows, which multiplies the limit by the number of processes — acceptable for
slowing guessing, not a quota.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    limit: int
    window_s: float
    _hits: dict[str, deque[float]] = field(default_factory=dict)

    def allow(self, key: str, now: float) -> bool:
        """Count a hit for ``key`` at ``now`` (seconds); False if over the limit."""
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        if len(self._hits) > 100_000:  # bound memory under a spray of distinct keys
            self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.window_s}
        return True

    def retry_after(self, key: str, now: float) -> float:
        hits = self._hits.get(key)
        return max(0.0, hits[0] + self.window_s - now) if hits else 0.0
