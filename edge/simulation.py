"""Simulated terminal hardware for the demo and tests: peripherals, temperature, customers.

Deterministic for a given seed, so a demo run and a test see the same story.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

PERIPHERALS = ("id_reader", "pin_pad", "ic_reader", "camera")

#: Business events a simulated customer produces, with their relative frequency.
CUSTOMER_EVENTS: tuple[tuple[str, int], ...] = (
    ("idcard_read", 4),
    ("iccard_inserted", 3),
    ("teller_requested", 2),
    ("iccard_removed", 3),
)


@dataclass
class SimulatedTerminal:
    seed: int
    rng: random.Random = field(init=False)
    states: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.states = dict.fromkeys(PERIPHERALS, "ok")

    def peripheral_states(self) -> dict[str, str]:
        # Rare faults that heal again, as worn card readers in dusty shops do.
        for name, state in self.states.items():
            if state == "ok" and self.rng.random() < 0.01:
                self.states[name] = self.rng.choice(("degraded", "fault"))
            elif state != "ok" and self.rng.random() < 0.3:
                self.states[name] = "ok"
        return dict(self.states)

    def temperature(self) -> float:
        return round(28.0 + self.rng.gauss(0, 3), 1)

    def customer_event(self) -> tuple[str, dict[str, Any]] | None:
        """One business event, or None when nobody is at the terminal."""
        if self.rng.random() < 0.6:
            return None
        names, weights = zip(*CUSTOMER_EVENTS, strict=True)
        etype = self.rng.choices(names, weights)[0]
        return etype, {"simulated": True, "n": self.rng.randrange(1_000_000)}
