"""The ``liveness`` and ``active_liveness`` steps: the agent's own check, its verdict signed.

Both run the vision session (passive scoring with the active challenge the customer screen
shows in large type); the verdict ``edge.vision.verdict.VisionResult`` travels unchanged as
the masked data (it holds no personal data: scores, models, reason codes, a frame digest).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from common.wire.call import StepRequest
from edge.steps.sign import Done
from edge.vision.verdict import VisionResult

Check = Callable[[str], Awaitable[VisionResult]]


def verdict_result(verdict: VisionResult) -> Done:
    """Pure: a verdict as a step result (``pass`` passes; anything else is a failed step the
    cloud keeps with its reason codes)."""
    data = verdict.to_dict()
    reason = "live" if verdict.decision == "pass" else ", ".join(verdict.reasons) or "low score"
    return Done("passed" if verdict.decision == "pass" else "failed", reason, data, data)


class LivenessStep:
    def __init__(self, check: Check, business: Callable[[], str]) -> None:
        self.check = check
        self.business = business

    async def __call__(self, request: StepRequest) -> Done:
        return verdict_result(await self.check(self.business()))
