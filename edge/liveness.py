"""Liveness checks on the terminal: the agent's shell around ``edge.vision``.

The cloud asks (command ``liveness_check`` with the business type); the agent runs the check
on its own camera frames, shows the challenge prompts to the customer, and sends back only
the result: the 0-100 score, the decision, the model versions, reason codes and a hash of
the frames. No frame, crop or landmark leaves the terminal or is written anywhere.

The vision stack (onnxruntime, NumPy) is imported and the models are verified and loaded on
the first check, so an agent that never checks pays nothing for them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from edge.vision.runtime import ModelSet
    from edge.vision.verdict import Policy, VisionResult

log = logging.getLogger("cuntong.liveness")

FrameSource = Callable[[], AsyncIterator["np.ndarray"]]
Prompt = Callable[[str], Awaitable[None]]


async def _log_prompt(text: str) -> None:
    # The customer screen shows this; until it exists the prompt goes to the log.
    log.info("challenge prompt: %s", text)


class Liveness:
    def __init__(
        self,
        frames: FrameSource | None,
        policy: Policy | None = None,
        prompt: Prompt = _log_prompt,
    ) -> None:
        self.frames = frames
        self.policy = policy
        self.prompt = prompt
        self._models: ModelSet | None = None
        self._busy = asyncio.Lock()

    async def check(self, business_type: str) -> VisionResult:
        from edge.vision.runtime import ModelSet
        from edge.vision.session import LivenessCheck
        from edge.vision.verdict import Policy

        if self.frames is None:
            raise ValueError("this terminal has no camera configured")
        if self._busy.locked():
            raise ValueError("a liveness check is already running")
        async with self._busy:
            if self._models is None:
                self._models = await asyncio.to_thread(ModelSet.load)
            check = LivenessCheck(self._models, policy=self.policy or Policy(), prompt=self.prompt)
            stream = self.frames()
            try:
                return await check.run(stream, business_type)
            finally:
                await stream.aclose()  # type: ignore[attr-defined]


def camera_frames(camera: Any) -> FrameSource:
    """Frames of a ``firmware_adapters`` camera adapter, as RGB arrays."""

    async def stream() -> AsyncIterator[np.ndarray]:
        async for frame in camera.frames():
            yield frame.pixels

    return stream
