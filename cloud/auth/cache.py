"""A short-lived, per-process cache of who a bearer token stands for.

Every guarded request would otherwise cost a database round trip before any work. An entry
lives ``ttl_s`` seconds (monotonic) and never past the login's own expiry. Logout in this
process drops the entry at once; a logout, disable or role change made through *another*
API process takes effect here within ``ttl_s`` — the price of the saved query.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class TokenCache(Generic[T]):
    ttl_s: float = 2.0
    max_entries: int = 10_000
    _entries: dict[str, tuple[float, dt.datetime, T]] = field(default_factory=dict)

    def get(self, digest: str, tick: float, now: dt.datetime) -> T | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        until, expires, value = entry
        if tick >= until or now >= expires:
            del self._entries[digest]
            return None
        return value

    def put(self, digest: str, value: T, expires: dt.datetime, tick: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > tick}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[digest] = (tick + self.ttl_s, expires, value)

    def drop(self, digest: str) -> None:
        self._entries.pop(digest, None)
