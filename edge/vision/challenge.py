"""The active liveness challenge, as Chinese bank apps run it: blink, open mouth, shake head.

The steps come in a random order (so a replayed video of an earlier session fails), each with a
screen prompt (text; `edge.prompts` synthesises voice files of the same texts, not yet
played) and a time limit, and each is judged from
face mesh measures only:

    blink  eyes seen open, then closed (EAR 35% below its open value), then open
    mouth  mouth seen closed, then open (MAR above OPEN_MAR), then closed again
    shake  head turned past YAW_DEG to one side and past it to the other, in at least
           SHAKE_FRAMES frames each way (what `planarity` needs to measure the turn)

Pure state machine: `Challenge.feed(measures, now)` takes the current frame's measures (None
when no usable face) and the time in seconds, and returns the updated challenge.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from edge.vision.facemesh import Measures

PROMPTS = {"blink": "请眨眨眼", "mouth": "请张张嘴", "shake": "请缓慢摇头"}
OPEN_EAR, CLOSED_EAR = 0.20, 0.12
CLOSED_FRACTION = 0.65  # eyes count as closed when EAR falls 35% below the open value seen
CLOSED_MAR, OPEN_MAR = 0.25, 0.35  # a smile showing teeth reads about 0.18
YAW_DEG = 15.0
SHAKE_FRAMES = 2


@dataclass(frozen=True)
class StepProgress:
    """Which phases of the current step have been seen."""

    phase: int = 0  # 0 = nothing yet; the step passes when phase reaches 3 (shake: 2 sides)
    open_ear: float = 0.0  # the largest eye opening seen, the blink's own baseline
    turns: tuple[int, int] = (0, 0)  # frames seen turned right, left


def advance(action: str, p: StepProgress, m: Measures) -> StepProgress:
    """One frame's measures applied to the current step's progress."""
    if action == "blink":
        if abs(m.yaw) >= YAW_DEG:
            # A turned head stretches the eye outline (the astronaut's EAR 0.29 reads 0.48
            # at 19°): taken as the baseline, an ordinary open eye would never count as
            # open again. Only frames facing the camera measure the blink.
            return p
        open_ear = max(p.open_ear, m.ear)
        if p.phase == 0 and m.ear >= OPEN_EAR:
            return replace(p, phase=1, open_ear=open_ear)
        if p.phase == 1 and (m.ear <= max(CLOSED_EAR, CLOSED_FRACTION * open_ear)):
            return replace(p, phase=2, open_ear=open_ear)
        if p.phase == 2 and m.ear >= max(OPEN_EAR, 0.8 * open_ear):
            return replace(p, phase=3, open_ear=open_ear)
        return replace(p, open_ear=open_ear)
    if action == "mouth":
        if p.phase in (0, 2) and m.mar <= CLOSED_MAR:
            return replace(p, phase=p.phase + 1)
        if p.phase == 1 and m.mar >= OPEN_MAR:
            return replace(p, phase=2)
        return p
    if action == "shake":
        right, left = p.turns
        turns = (right + (m.yaw >= YAW_DEG), left + (m.yaw <= -YAW_DEG))
        done = sum(n >= SHAKE_FRAMES for n in turns)
        return replace(p, turns=turns, phase=3 if done == 2 else done)
    raise ValueError(f"unknown challenge action {action!r}")


@dataclass(frozen=True)
class Challenge:
    """The challenge's whole state; `outcome` is None while it runs."""

    order: tuple[str, ...]
    step_timeout: float
    step: int = 0
    step_started: float = 0.0
    progress: StepProgress = field(default_factory=StepProgress)
    outcome: str | None = None  # "passed", or the reason code of the failure
    passed: tuple[str, ...] = ()

    @classmethod
    def start(
        cls, now: float, rng: random.Random, step_timeout: float = 8.0, steps: int = 3
    ) -> Challenge:
        """A new challenge with `steps` actions in random order, starting at `now`."""
        return cls(
            order=tuple(rng.sample(sorted(PROMPTS), steps)),
            step_timeout=step_timeout,
            step_started=now,
        )

    @property
    def prompt(self) -> str | None:
        """What the terminal says and shows now; None when finished."""
        return PROMPTS[self.order[self.step]] if self.outcome is None else None

    def feed(self, measures: Measures | None, now: float) -> Challenge:
        if self.outcome is not None:
            return self
        if now - self.step_started >= self.step_timeout:
            return replace(self, outcome="CHALLENGE_TIMEOUT")
        if measures is None:
            return self
        progress = advance(self.order[self.step], self.progress, measures)
        if progress.phase < 3:
            return replace(self, progress=progress)
        passed = (*self.passed, self.order[self.step])
        if len(passed) == len(self.order):
            return replace(self, progress=progress, passed=passed, outcome="passed")
        return replace(
            self, step=self.step + 1, step_started=now, progress=StepProgress(), passed=passed
        )

    def tick(self, now: float) -> Challenge:
        """Advance the clock alone (no frame arrived): times out a stalled step."""
        return self.feed(None, now)
