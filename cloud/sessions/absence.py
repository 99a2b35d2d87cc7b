"""Who went missing when, and whose grace period is over (pure; time is an argument).

A terminal whose link drops during a call, or a teller whose screen's WebSocket closes,
gets a grace period to come back (a village 4G cell hands over, a browser reloads).
``Absences`` only keeps the clock: ``gone`` marks the first time someone went missing,
``back`` forgets them, ``due`` hands over (once) everyone missing for at least ``grace``
seconds. What to do about them is the caller's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Absences:
    grace: float
    since: dict[str, float] = field(default_factory=dict)

    def gone(self, who: str, now: float) -> None:
        """``who`` is missing from ``now`` (an earlier mark stands)."""
        self.since.setdefault(who, now)

    def back(self, who: str) -> bool:
        """``who`` returned; True if they had been missing."""
        return self.since.pop(who, None) is not None

    def missing(self, who: str) -> bool:
        return who in self.since

    def due(self, now: float) -> list[str]:
        """Everyone missing for ``grace`` seconds or more, oldest first; forgotten here."""
        over = sorted((t, who) for who, t in self.since.items() if now - t >= self.grace)
        for _, who in over:
            del self.since[who]
        return [who for _, who in over]
