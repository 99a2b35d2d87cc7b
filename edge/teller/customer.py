"""The simulated customer of a simulated terminal (``cuntong up``): pure choices from a seed.

Now and then (mean ``every_s`` seconds apart, exponential gaps) someone at the terminal asks
for a teller, for a business of the screen's menu; the call lasts a while unless the desk
ends it first; then they rate it, mostly well. Forms are answered as the contract says
(confirm = true, first option, text "模拟") and signatures are synthetic strokes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from edge.teller.menu import MENU

SIM_TEXT = "模拟"


def auto_answer(form: dict[str, Any]) -> dict[str, Any]:
    """What a simulated customer answers to a form."""
    values: dict[str, Any] = {}
    for f in form.get("fields", []):
        kind = f.get("kind")
        if kind == "confirm":
            values[f["name"]] = True
        elif kind == "choice":
            values[f["name"]] = f["options"][0]
        else:
            values[f["name"]] = SIM_TEXT
    return values


def synthetic_strokes(
    rng: random.Random, width: int = 600, height: int = 200
) -> list[list[list[float]]]:
    """Three wavy strokes across the pad, about 20 points each, 15 ms apart."""
    strokes, t = [], 0.0
    for s in range(3):
        x0, y0 = width * (0.1 + 0.28 * s), height * rng.uniform(0.3, 0.7)
        stroke = []
        for i in range(20):
            x = x0 + i * width * 0.012
            y = y0 + math.sin(i / 3 + s) * height * 0.15
            stroke.append([round(x, 1), round(y, 1), round(t)])
            t += 15
        strokes.append(stroke)
        t += 200
    return strokes


@dataclass
class SimulatedCustomer:
    seed: int
    every_s: float
    #: How long they wait in the queue before giving up, and how long they talk (s).
    patience: tuple[float, float] = (120.0, 600.0)
    talk: tuple[float, float] = (30.0, 120.0)
    #: How long they read "满意吗?" before pressing a button.
    read_s: float = 3.0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def next_visit_in(self) -> float:
        """Seconds until someone asks for a teller (exponential, mean ``every_s``)."""
        return self.rng.expovariate(1.0 / self.every_s)

    def business(self) -> str:
        return self.rng.choice(MENU)[0]

    def elderly(self) -> bool:
        return self.rng.random() < 0.4  # most of a village's daytime customers are older

    def patience_s(self) -> float:
        return self.rng.uniform(*self.patience)

    def talk_s(self) -> float:
        """How long they stay in the call if the teller does not end it first."""
        return self.rng.uniform(*self.talk)

    def score(self) -> int:
        return self.rng.choices((5, 4, 3, 2, 1), (60, 25, 8, 4, 3))[0]
