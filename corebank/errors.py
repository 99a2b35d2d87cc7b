"""The core-banking branch of the exception tree.

CoreBankError (CuntongError)
├── CoreRefused   the core answered no; `reason`: card_locked, insufficient_funds,
│                 account_unknown, idempotency_conflict, bad_request, unauthorised
└── CorePending   no answer after every retry: the post may or may not be applied;
                  `key` is what `reconcile` takes
"""

from __future__ import annotations

from common.errors import CuntongError, Refusal


class CoreBankError(CuntongError):
    """Root of the core adapter's errors."""


class CoreRefused(CoreBankError, Refusal):
    """The core refused a request for a short machine-readable reason."""

    def __init__(self, reason: str, detail: str = "", status: int = 422) -> None:
        Refusal.__init__(self, reason, detail)
        self.status = status


class CorePending(CoreBankError):
    """The post's outcome is unknown (answer lost); settle it with `reconcile(key)`."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"posting {key} pending: {detail}")
        self.key = key
