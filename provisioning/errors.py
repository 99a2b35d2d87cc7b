"""Provisioning's branch of the project exception tree.

    CuntongError
    └── ProvisioningError
        ├── ClaimRefused       a claim token is unknown, wrong, expired, exhausted, revoked
        │                      or out of scope (``reason`` says which)
        ├── EnrolmentRefused   the request itself is refused (bad CSR, taken terminal id,
        │                      revoked or unknown device on renewal)
        └── CommandRefused     a cloud → terminal command failed verification (``reason``)

Every refusal carries a short machine-readable ``reason`` so the API can answer it and the
agent can report it on ``cmd-reply`` without string matching.
"""

from __future__ import annotations

from cuntong.errors import CuntongError


class ProvisioningError(CuntongError):
    """Root of provisioning errors."""


class _Refusal(ProvisioningError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ClaimRefused(_Refusal):
    """The enrolment claim does not allow this enrolment."""


class EnrolmentRefused(_Refusal):
    """The enrolment or renewal request is refused for a reason other than the claim."""


class CommandRefused(_Refusal):
    """A command envelope is expired, replayed, badly signed or not for this terminal."""
