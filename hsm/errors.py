"""The HSM branch of the exception tree.

HsmError (CuntongError)
├── HsmRefused      the service refused a command; `reason` says why in one word
│                   (pin_block_invalid, pin_mismatch, pin_weak, key_unknown, key_kind,
│                   kcv_mismatch, sm4_unsupported, bad_request, unauthorised)
└── HsmUnavailable  the service did not answer (down, wrong port, timed out)
"""

from __future__ import annotations

from common.errors import CuntongError, Refusal


class HsmError(CuntongError):
    """Root of the HSM service's and its client's errors."""


class HsmRefused(HsmError, Refusal):
    """A command refused for a short machine-readable reason."""

    def __init__(self, reason: str, detail: str = "", status: int = 422) -> None:
        Refusal.__init__(self, reason, detail)
        self.status = status


class HsmUnavailable(HsmError):
    """The HSM service could not be reached or did not answer in time."""
