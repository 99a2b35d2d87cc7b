"""A/B slots of one component on the terminal. Pure.

Install goes into the inactive slot; ``switch`` makes it active on trial, remembering the
previous slot; ``commit`` ends the trial after a passed health check; ``rollback`` goes back.
``boot`` counts starts during a trial: an agent that had to start twice without committing
did not come back healthy, and rolls back by itself; so does a trial still uncommitted past
its deadline (``trial_until``, wall-clock seconds, set by ``switch`` when the component's
trial has one — the agent's own slots do, see ``edge.agent_slots``).
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
    #: A trial not committed by then (epoch seconds) rolls back; None: no deadline.
    trial_until: float | None = None

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


def switch(s: Slots, version: str, trial_until: float | None = None) -> Slots:
    slot = s.inactive
    return Slots(slot, s.active, True, 0, {**s.versions, slot: version}, trial_until)


def commit(s: Slots) -> Slots:
    return replace(s, trial=False, boots=0, trial_until=None)


def rollback(s: Slots) -> Slots:
    if s.previous is None:
        raise ValueError("nothing to roll back to")
    return Slots(s.previous, None, False, 0, s.versions)


def expired(s: Slots, now: float) -> bool:
    """A trial whose deadline has passed without a commit."""
    return s.trial and s.trial_until is not None and now > s.trial_until


def boot(s: Slots, now: float | None = None) -> Slots:
    """Count a start; a second start on trial without a commit rolls back, and so does a
    start past the trial's deadline (when ``now`` is given)."""
    if not s.trial:
        return s
    if s.boots >= 1 or (now is not None and expired(s, now)):
        return rollback(s)
    return replace(s, boots=s.boots + 1)
