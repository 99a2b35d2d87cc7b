"""The active challenge on measures from real frames, its random order, and its time limit."""

from __future__ import annotations

import random

import numpy as np
import pytest

from edge.vision import pipeline
from edge.vision.challenge import PROMPTS, Challenge
from edge.vision.runtime import ModelSet
from tests.vision.faces import acted


@pytest.fixture(scope="module")
def measures(models: ModelSet, astronaut: np.ndarray) -> dict[str, list]:
    frames = acted(models, astronaut)
    return {k: [pipeline.analyze(models, f).measures for f in v] for k, v in frames.items()}


def test_acted_frames_move_the_measures(measures: dict[str, list]) -> None:
    open_ear = measures["neutral"][0].ear
    assert measures["blink"][1].ear < 0.65 * open_ear
    assert measures["mouth"][1].mar > 0.35 > measures["mouth"][0].mar
    yaws = [m.yaw for m in measures["shake"]]
    assert max(yaws) > 15 and min(yaws) < -15


def test_a_blink_after_a_turned_head_still_counts(measures: dict[str, list]) -> None:
    """A customer still shaking their head from the last prompt when 请眨眨眼 comes: the
    turned frames (their eyes read wider) must not become the blink's open-eye baseline
    (seen in the browser walk, tests/transactions/test_high_risk_browser.py)."""
    c = Challenge(order=("blink",), step_timeout=8.0)
    now = 0.0
    for m in [*measures["shake"], *measures["blink"]]:
        now += 0.2
        c = c.feed(m, now)
    assert c.outcome == "passed", c


def test_each_step_passes_in_the_drawn_order(measures: dict[str, list]) -> None:
    c = Challenge.start(now=0.0, rng=random.Random(3))
    assert sorted(c.order) == sorted(PROMPTS)
    assert c.prompt == PROMPTS[c.order[0]]
    now = 0.0
    for action in c.order:
        for m in measures[action]:
            now += 0.2
            c = c.feed(m, now)
    assert c.outcome == "passed" and c.passed == c.order and c.prompt is None


def test_the_wrong_action_does_not_pass_a_step(measures: dict[str, list]) -> None:
    c = Challenge(order=("blink", "mouth", "shake"), step_timeout=8.0)
    for m in measures["mouth"] + measures["shake"]:
        c = c.feed(m, 1.0)
    assert c.step == 0 and c.outcome is None
    c = c.feed(None, 8.5)
    assert c.outcome == "CHALLENGE_TIMEOUT"


def test_order_varies_between_sessions() -> None:
    rng = random.Random(11)
    orders = {Challenge.start(0.0, rng).order for _ in range(30)}
    assert len(orders) >= 4  # 6 possible orders


def test_a_still_photo_times_out(measures: dict[str, list]) -> None:
    c = Challenge.start(now=100.0, rng=random.Random(1), step_timeout=5.0)
    now = 100.0
    while c.outcome is None and now < 200:
        now += 0.1
        c = c.feed(measures["neutral"][0], now)
    assert c.outcome == "CHALLENGE_TIMEOUT"
    assert 104.95 < now < 105.15  # stopped on the first frame at the limit
