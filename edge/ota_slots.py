"""A/B slots of one component on the terminal. Pure.

Install goes into the inactive slot; ``switch`` makes it active on trial, remembering the
previous slot; ``commit`` ends the trial after a passed health check; ``rollback`` goes back.
``boot`` counts starts during a trial: an agent that had to start twice without committing
did not come back healthy, and rolls back by itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

SLOTS = ("a", "b")


@dataclass(frozen=True, slots=True)
class Slots:
    active: str = "a"
    previous: str | None = None
    trial: bool = False
    boots: int = 0
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def inactive(self) -> str:
        return SLOTS[1 - SLOTS.index(self.active)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Slots:
        s = cls(**raw)
        if s.active not in SLOTS:
            raise ValueError(f"unknown slot {s.active!r}")
        return s


def switch(s: Slots, version: str) -> Slots:
    slot = s.inactive
    return Slots(slot, s.active, True, 0, {**s.versions, slot: version})


def commit(s: Slots) -> Slots:
    return replace(s, trial=False, boots=0)


def rollback(s: Slots) -> Slots:
    if s.previous is None:
        raise ValueError("nothing to roll back to")
    return Slots(s.previous, None, False, 0, s.versions)


def boot(s: Slots) -> Slots:
    """Count a start; a second start on trial without a commit rolls back."""
    if not s.trial:
        return s
    if s.boots >= 1:
        return rollback(s)
    return replace(s, boots=s.boots + 1)
