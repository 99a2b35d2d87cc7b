"""The ``e_signature`` and ``voucher_capture`` steps: what the customer delivered over the
call's data channel (``edge.teller.paperwork``), signed by its digest.

The teller first asks for the signature or the voucher photo with the desk's tools; the
step then signs the digest of what the terminal sent (strokes, JPEG). Asked before anything
was delivered, the step fails with words saying what to do first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common.wire.call import StepRequest
from edge.steps.sign import Done

#: step -> (what ``Paperwork.delivered`` keeps it as, what to do first)
WHAT = {
    "e_signature": ("signature", "no signature from the customer yet: ask for one first"),
    "voucher_capture": ("voucher", "no voucher photo yet: capture the voucher first"),
}


def delivered_result(step: str, delivered: dict[str, dict[str, Any]]) -> Done:
    """Pure: the step's result from what the paperwork delivered in this call."""
    key, missing = WHAT[step]
    item = delivered.get(key)
    if item is None:
        return Done("failed", missing)
    return Done("passed", f"{key} delivered", dict(item), dict(item))


class PaperworkStep:
    def __init__(self, step: str, delivered: Callable[[], dict[str, dict[str, Any]]]) -> None:
        self.step = step
        self.delivered = delivered

    async def __call__(self, request: StepRequest) -> Done:
        return delivered_result(self.step, self.delivered())
