"""Which broker a terminal uses next: the pure core of broker failover.

Mosquitto has no clustering, so failover is the client's: a terminal holds an ordered list
of broker endpoints and uses the first that answers. ``Rotation`` is that choice with no
I/O: the link calls ``failed()`` each time a connection attempt fails or a link drops, and
``connected()`` once one is up. A full round of failures (every endpoint tried once since
the last connection) is the moment to ask the cloud whether the list changed
(``round_failed``); ``replace`` installs a new list and keeps the current broker when it is
still on it, so a list refreshed while connected does not move a working link.

The rotation does not fail back: a terminal stays on the broker it reached until that one
fails, so a flapping primary does not drag the fleet back and forth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

E = TypeVar("E")


@dataclass
class Rotation(Generic[E]):
    endpoints: tuple[E, ...]
    index: int = 0
    #: Failures since the last connection (or list change).
    failures: int = field(default=0)

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError("a broker rotation needs at least one endpoint")
        self.endpoints = tuple(self.endpoints)

    @property
    def current(self) -> E:
        return self.endpoints[self.index]

    def failed(self) -> E:
        """The current endpoint failed: move to the next (wrapping) and return it."""
        self.failures += 1
        self.index = (self.index + 1) % len(self.endpoints)
        return self.current

    def connected(self) -> None:
        self.failures = 0

    @property
    def round_failed(self) -> bool:
        """Every endpoint failed since the last connection: time to refresh the list."""
        return self.failures > 0 and self.failures % len(self.endpoints) == 0

    def replace(self, endpoints: Sequence[E]) -> bool:
        """Install a new list; True if it differs. The current endpoint stays current when
        the new list has it; otherwise the new list's first is next."""
        new = tuple(endpoints)
        if not new:
            raise ValueError("a broker rotation needs at least one endpoint")
        if new == self.endpoints:
            return False
        current = self.current
        self.endpoints = new
        self.index = new.index(current) if current in new else 0
        self.failures = 0
        return True


@dataclass(frozen=True, slots=True)
class _Seen(Generic[E]):
    ts_ms: int
    broker: E
    online: bool


@dataclass
class Presence(Generic[E]):
    """Which broker each terminal is on, from the retained ``status`` of every broker.

    A cloud link subscribed on several brokers hears stale news: a broker that comes back
    still holds the terminal's old retained "online", another one its old "offline". News
    from the broker the terminal was last seen on always applies (that broker orders it,
    and a last will carries the connect time, older than the "online" it follows); news
    from another broker applies only if its timestamp (the terminal's clock) is not older.
    """

    _seen: dict[str, _Seen[E]] = field(default_factory=dict)

    def update(self, terminal_id: str, broker: E, online: bool, ts_ms: int) -> bool:
        """Apply one status; True if the terminal just came online (was not before)."""
        prev = self._seen.get(terminal_id)
        if prev is not None and prev.broker != broker and ts_ms < prev.ts_ms:
            return False
        self._seen[terminal_id] = _Seen(ts_ms, broker, online)
        return online and not (prev is not None and prev.online)

    def where(self, terminal_id: str) -> E | None:
        """The broker an online terminal is on; None when offline or unknown."""
        seen = self._seen.get(terminal_id)
        return seen.broker if seen is not None and seen.online else None

    def broker_lost(self, broker: E) -> list[str]:
        """The link to ``broker`` dropped: its terminals are offline until heard elsewhere
        (kept as offline, so that broker's stale retained news stays ignored); their ids."""
        lost = [t for t, s in self._seen.items() if s.broker == broker and s.online]
        for t in lost:
            self._seen[t] = _Seen(self._seen[t].ts_ms, broker, False)
        return lost

    def online(self) -> set[str]:
        return {t for t, s in self._seen.items() if s.online}
