"""One liveness check over a live frame stream: the async shell around the pure parts.

`LivenessCheck.run(frames, business_type)` draws a random challenge order, prompts each step,
analyses every frame on a worker thread (the agent's `FrameThread`, at real-time priority
when permitted; else `asyncio.to_thread`; one onnxruntime thread either way), feeds
the measures to the challenge, and stops at the outcome, at a step's time limit, or when the
stream ends or stalls. Frames are hashed and dropped as they go; the planarity track holds
the rigid landmarks of one reference frame until the check returns: the check keeps no frame,
crop or landmark after it returns, and writes nothing to disk.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from common.aio import within
from edge.vision.challenge import Challenge
from edge.vision.frames import FrameThread
from edge.vision.pipeline import FrameAnalysis, Gates, analyze
from edge.vision.planarity import Planarity
from edge.vision.runtime import ModelSet
from edge.vision.verdict import FrameDigest, Policy, VisionResult, decide

Prompt = Callable[[str], Awaitable[None]]


async def _no_prompt(text: str) -> None:
    return None


@dataclass
class LivenessCheck:
    """Runs checks with one model set; `clock` and `rng` are seams tests move."""

    models: ModelSet
    policy: Policy = field(default_factory=Policy)
    gates: Gates = field(default_factory=Gates)
    step_timeout: float = 8.0
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=lambda: random.Random(secrets.randbits(64)))
    prompt: Prompt = _no_prompt
    #: Where frames are analysed (None: a default worker thread, ordinary scheduling).
    frame_thread: FrameThread | None = None

    async def run(self, frames: AsyncIterator[np.ndarray], business_type: str) -> VisionResult:
        challenge = Challenge.start(self.clock(), self.rng, self.step_timeout)
        digest, analyses, planarity = FrameDigest(), [], Planarity()
        await self.prompt(challenge.prompt or "")
        try:
            while challenge.outcome is None:
                remaining = challenge.step_started + self.step_timeout - self.clock()
                if remaining <= 0:
                    challenge = challenge.tick(self.clock())
                    continue
                try:
                    frame = await within(anext(frames), remaining)
                except TimeoutError:
                    # The wait lasted the step's remaining time: the step is over even if the
                    # injected clock and the event loop's clock disagree slightly.
                    limit = challenge.step_started + self.step_timeout
                    challenge = challenge.tick(max(self.clock(), limit))
                    continue
                except StopAsyncIteration:
                    break
                digest.update(frame)
                result: FrameAnalysis = await (
                    self.frame_thread.run(analyze, self.models, frame, self.gates)
                    if self.frame_thread is not None
                    else asyncio.to_thread(analyze, self.models, frame, self.gates)
                )
                del frame  # the only reference this check held
                if result.usable and result.points is not None and result.measures is not None:
                    assert result.face is not None  # usable frames have one face
                    planarity = planarity.feed(result.points, result.face.box, result.measures.yaw)
                analyses.append(_without_geometry(result))
                before = challenge.prompt
                challenge = challenge.feed(result.measures if result.usable else None, self.clock())
                if challenge.prompt and challenge.prompt != before:
                    await self.prompt(challenge.prompt)
        finally:
            close = getattr(frames, "aclose", None)  # release the camera's generator now
            if close is not None:
                await close()
        return decide(
            analyses, challenge, self.policy, business_type, self.models.versions, digest, planarity
        )


def _without_geometry(a: FrameAnalysis) -> FrameAnalysis:
    """Keep scores and codes, drop face boxes and landmarks (biometric detail) at once."""
    return FrameAnalysis(
        faces=a.faces, reasons=a.reasons, passive=a.passive, member_scores=a.member_scores
    )
