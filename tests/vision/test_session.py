"""A whole liveness check: virtual customer, replay attack, time limits, what leaves the box."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from edge.vision.challenge import PROMPTS
from edge.vision.pipeline import FrameAnalysis
from edge.vision.planarity import Planarity
from edge.vision.runtime import ModelSet
from edge.vision.session import LivenessCheck
from edge.vision.verdict import FrameDigest, Policy, VisionResult, decide
from modeltools.train import attacks
from tests.vision.faces import acted

ACTION_OF = {v: k for k, v in PROMPTS.items()}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Customer:
    """Acts out whatever the terminal last asked, one frame every 0.2 s of fake time."""

    def __init__(self, frames: dict[str, list[np.ndarray]], clock: Clock, limit: int = 60):
        self.frames, self.clock, self.limit = frames, clock, limit
        self.action = "neutral"
        self.prompts: list[str] = []
        self.sent: list[np.ndarray] = []
        self.closed = False

    async def hear(self, prompt: str) -> None:
        self.prompts.append(prompt)
        self.action = ACTION_OF.get(prompt, "neutral")

    async def stream(self) -> AsyncIterator[np.ndarray]:
        try:
            for _ in range(self.limit):
                for frame in self.frames[self.action]:
                    self.clock.t += 0.2
                    self.sent.append(frame)
                    yield frame
        finally:
            self.closed = True


@pytest.fixture(scope="module")
def acted_frames(models: ModelSet, astronaut: np.ndarray) -> dict[str, list[np.ndarray]]:
    return acted(models, astronaut)


def _check(models: ModelSet, customer: Customer, clock: Clock, **kw) -> LivenessCheck:
    return LivenessCheck(models, clock=clock, rng=random.Random(5), prompt=customer.hear, **kw)


async def test_cooperative_customer_passes(
    models: ModelSet, acted_frames: dict[str, list[np.ndarray]], tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    clock = Clock()
    customer = Customer(acted_frames, clock)
    result = await _check(models, customer, clock).run(customer.stream(), "password_reset")
    assert result.decision == "pass" and result.reasons == ()
    assert result.score >= 90  # the real photo's passive score is about 0.99
    assert customer.prompts == [PROMPTS[a] for a in result.challenge]
    assert result.models == models.versions
    assert customer.closed
    # The frame digest is the chained SHA-256 of exactly the frames sent.
    digest = FrameDigest()
    for f in customer.sent:
        digest.update(f)
    assert (result.frames, result.frames_sha256) == (len(customer.sent), digest.hexdigest())
    # What leaves the terminal: a small JSON of known fields, no pixels; nothing on disk.
    wire = result.to_bytes()
    assert VisionResult.parse(wire) == result
    assert len(wire) < 1024
    assert set(json.loads(wire)) == set(VisionResult.__dataclass_fields__)
    assert os.listdir(tmp_path) == []


async def test_screen_replay_goes_to_manual_review(
    models: ModelSet, acted_frames: dict[str, list[np.ndarray]]
) -> None:
    rng = np.random.default_rng(9)
    replayed = {k: [attacks.screen_attack(f, rng) for f in v] for k, v in acted_frames.items()}
    clock = Clock()
    customer = Customer(replayed, clock, limit=12)
    result = await _check(models, customer, clock).run(customer.stream(), "password_reset")
    assert result.decision == "manual_review"
    refusals = {"PASSIVE_BELOW_THRESHOLD", "CHALLENGE_TIMEOUT", "CHALLENGE_ABORTED"}
    assert refusals & set(result.reasons)
    assert result.score < 70


async def test_still_photo_times_out_cleanly(
    models: ModelSet, acted_frames: dict[str, list[np.ndarray]]
) -> None:
    clock = Clock()
    still = {action: acted_frames["neutral"] for action in ("neutral", *PROMPTS)}
    customer = Customer(still, clock)
    check = _check(models, customer, clock, step_timeout=2.0)
    result = await check.run(customer.stream(), "card_activation")
    assert result.reasons == ("CHALLENGE_TIMEOUT",)
    assert result.score == 0 and result.decision == "manual_review"
    assert result.frames == 10  # 5 frames/s; the 10th arrives at the 2 s limit
    assert customer.closed


async def test_stalled_camera_times_out_on_the_real_clock(
    models: ModelSet, astronaut: np.ndarray
) -> None:
    closed = asyncio.Event()

    async def stalls() -> AsyncIterator[np.ndarray]:
        try:
            yield astronaut
            await asyncio.Event().wait()  # the camera stops delivering
            yield astronaut
        finally:
            closed.set()

    check = LivenessCheck(models, step_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await asyncio.wait_for(check.run(stalls(), "password_reset"), timeout=5)
    assert loop.time() - started < 2.0
    assert result.reasons == ("CHALLENGE_TIMEOUT",) and result.frames == 1
    assert closed.is_set()


async def test_check_keeps_no_reference_to_frames(
    models: ModelSet, acted_frames: dict[str, list[np.ndarray]]
) -> None:
    frames = {k: [f.copy() for f in v] for k, v in acted_frames.items()}
    before = [sys.getrefcount(f) for v in frames.values() for f in v]
    clock = Clock()
    customer = Customer(frames, clock)
    await _check(models, customer, clock).run(customer.stream(), "password_reset")
    customer.sent.clear()
    gc.collect()  # asyncio tasks sit in reference cycles until the collector runs
    after = [sys.getrefcount(f) for v in frames.values() for f in v]
    assert after == before


# A head that turned both ways with clear parallax, built by feeding the tracker.
DEEP = Planarity(measured=((1, 0.05), (1, 0.05), (-1, 0.05), (-1, 0.05)), peaks=(20.0, 20.0))


def _analyses(passive: float, n: int = 5) -> list[FrameAnalysis]:
    return [FrameAnalysis(faces=1, reasons=(), passive=passive) for _ in range(n)]


@pytest.mark.parametrize(
    ("passive", "business", "decision"),
    [
        (0.95, "password_reset", "pass"),
        (0.65, "password_reset", "manual_review"),
        (0.65, "balance_inquiry", "pass"),
        (0.85, "large_transfer", "manual_review"),
    ],
)
def test_threshold_routes_per_business_type(passive: float, business: str, decision: str) -> None:
    from edge.vision.challenge import Challenge

    policy = Policy(default=70, by_business={"balance_inquiry": 60, "large_transfer": 90})
    passed = Challenge(order=("blink",), step_timeout=8, outcome="passed", passed=("blink",))
    digest = FrameDigest()
    result = decide(_analyses(passive), passed, policy, business, {"m": "1"}, digest, DEEP)
    assert result.decision == decision
    assert result.score == round(passive * 100)
    assert result.threshold == policy.threshold(business)
    assert ("PASSIVE_BELOW_THRESHOLD" in result.reasons) == (decision == "manual_review")


def test_second_face_blocks_even_with_a_high_score() -> None:
    from edge.vision.challenge import Challenge

    passed = Challenge(order=("blink",), step_timeout=8, outcome="passed", passed=("blink",))
    frames = [*_analyses(0.99), FrameAnalysis(faces=2, reasons=("MULTIPLE_FACES",))]
    result = decide(frames, passed, Policy(), "x", {}, FrameDigest(), DEEP)
    assert result.score == 99 and result.decision == "manual_review"
    assert result.reasons == ("MULTIPLE_FACES",)


@pytest.mark.parametrize(
    "garbage",
    [b"{}", b"[1]", b"nope", json.dumps({"score": 50, "frame": "AAAA"}).encode()],
)
def test_result_parse_rejects_garbage_and_extra_fields(garbage: bytes) -> None:
    with pytest.raises(ValueError):
        VisionResult.parse(garbage)


def test_digest_depends_on_every_pixel(astronaut: np.ndarray) -> None:
    a, b = FrameDigest(), FrameDigest()
    a.update(astronaut)
    changed = astronaut.copy()
    changed[100, 100, 0] ^= 1
    b.update(changed)
    assert a.hexdigest() != b.hexdigest()
    assert len(a.hexdigest()) == 64 and hashlib.sha256(b"").hexdigest() != a.hexdigest()


async def test_stall_times_out_even_when_the_injected_clock_stands_still(
    models: ModelSet,
) -> None:
    async def nothing() -> AsyncIterator[np.ndarray]:
        await asyncio.Event().wait()
        yield np.zeros((4, 4, 3), np.uint8)  # never reached

    frozen = Clock()
    check = LivenessCheck(models, step_timeout=0.2, clock=frozen)
    result = await asyncio.wait_for(check.run(nothing(), "password_reset"), timeout=5)
    assert result.reasons == ("CHALLENGE_TIMEOUT", "NO_USABLE_FRAME") and result.frames == 0
