"""Provisioning's branch of the project exception tree.

    CuntongError
    └── ProvisioningError
        ├── ClaimRefused       a claim token is unknown, wrong, expired, exhausted, revoked
        │                      or out of scope (``reason`` says which)
        ├── EnrolmentRefused   the request itself is refused (bad CSR, taken terminal id,
        │                      revoked or unknown device on renewal)

    Refusal (common.errors)
    └── CommandRefused     a cloud → terminal command failed verification (``reason``);
                           it lives with the command codec in the bottom layer

Every refusal carries a short machine-readable ``reason`` so the API can answer it and the
agent can report it on ``cmd-reply`` without string matching.
"""

from __future__ import annotations

from common.errors import CommandRefused, CuntongError, Refusal


class ProvisioningError(CuntongError):
    """Root of provisioning errors."""


__all__ = ["ClaimRefused", "CommandRefused", "EnrolmentRefused", "ProvisioningError"]


class _Refusal(ProvisioningError, Refusal):
    pass


class ClaimRefused(_Refusal):
    """The enrolment claim does not allow this enrolment."""


class EnrolmentRefused(_Refusal):
    """The enrolment or renewal request is refused for a reason other than the claim."""
