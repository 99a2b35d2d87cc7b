"""The identity check's branch of `common.errors.CuntongError`.

IdCheckError
├── IdentityServiceDown  no answer within the bound (down, 5xx, hanging, unreachable)
├── RequestRefused       the service refused the request (bad signature, stale, bad input)
└── AnswerInvalid        an answer that does not parse, is unsigned, or is for another session
"""

from __future__ import annotations

from common.errors import CuntongError, Refusal, WireError


class IdCheckError(CuntongError):
    """Root of the identity check's errors."""


class IdentityServiceDown(IdCheckError):
    """The identity service gave no usable answer within the caller's time bound."""


class RequestRefused(IdCheckError, Refusal):
    """The service answered 4xx; `reason` is its machine-readable code."""


class AnswerInvalid(IdCheckError, WireError):
    """The answer is malformed, badly signed, or bound to a different session."""
