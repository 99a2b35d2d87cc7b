"""Sliding-window rate limits (pure; time is an argument).

``RateLimiter`` caps attempts per key: login per client address, enrolment per client
address. ``LoginThrottle`` slows wrong passwords without ever locking an account.
In-process: each API process keeps its own windows, which multiplies the limit by the
number of processes — acceptable for slowing guessing, not a quota.
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


def _prune(hits: deque[float], now: float, window_s: float) -> int:
    while hits and hits[0] <= now - window_s:
        hits.popleft()
    return len(hits)


@dataclass
class LoginThrottle:
    """Wrong-password throttling that an attacker cannot turn into a lock-out (pure).

    Two things, on failed logins only:

    - per (account, address): ``pair_limit`` failures in ``window_s`` refuse further attempts
      on that account *from that address* until the window moves on (429). A guesser on one
      address cannot lock out the teller logging in from another.
    - per account, from anywhere: after ``free_failures`` failures in the window, every
      attempt on the account waits ``base_delay_s`` doubling per further failure, capped at
      ``max_delay_s``. That slows a guesser who spreads over many addresses without ever
      refusing the real teller, who at worst waits ``max_delay_s`` for an answer.

    A successful login clears its own (account, address) failures.
    """

    pair_limit: int = 5
    window_s: float = 60.0
    free_failures: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 4.0
    _pairs: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _accounts: dict[str, deque[float]] = field(default_factory=dict)

    def refused_for(self, account: str, address: str, now: float) -> float | None:
        """Seconds until ``address`` may try ``account`` again, or None if it may now."""
        hits = self._pairs.get((account, address))
        if hits is None or _prune(hits, now, self.window_s) < self.pair_limit:
            return None
        return max(0.0, hits[0] + self.window_s - now)

    def delay(self, account: str, now: float) -> float:
        """How long an attempt on ``account`` waits before its password is checked."""
        hits = self._accounts.get(account)
        failures = _prune(hits, now, self.window_s) if hits is not None else 0
        if failures < self.free_failures:
            return 0.0
        return min(self.max_delay_s, self.base_delay_s * 2 ** (failures - self.free_failures))

    def failed(self, account: str, address: str, now: float) -> None:
        self._pairs.setdefault((account, address), deque()).append(now)
        self._accounts.setdefault(account, deque()).append(now)
        if len(self._pairs) + len(self._accounts) > 100_000:  # bound memory under a spray
            cutoff = now - self.window_s
            self._pairs = {k: v for k, v in self._pairs.items() if v and v[-1] > cutoff}
            self._accounts = {k: v for k, v in self._accounts.items() if v and v[-1] > cutoff}

    def succeeded(self, account: str, address: str) -> None:
        self._pairs.pop((account, address), None)
