"""The workflow package's exceptions (all under ``common.errors.CuntongError``)."""

from __future__ import annotations

from common.errors import CuntongError


class WorkflowError(CuntongError, ValueError):
    """A step was recorded that the rules do not allow."""


class StepOutOfOrder(WorkflowError):
    """The step is not the next required one (steps cannot be skipped or repeated)."""


class SecondPersonRequired(WorkflowError):
    """A step needs a second, authorised person (not the serving teller)."""


class WorkflowIncomplete(WorkflowError):
    """The session tried to complete with required steps still outstanding."""


class WorkflowClosed(WorkflowError):
    """The workflow already has an outcome."""


class DeviceStepOnly(WorkflowError):
    """A teller tried to mark a step done that only the terminal (or the cloud's own check)
    can pass: ask the terminal for it, or have a supervisor override it."""


class StepResultRefused(WorkflowError):
    """A terminal's step result the cloud does not trust: unknown signer, bad signature,
    replayed or unknown nonce, another session's result (the message says which)."""


class PostingInDoubt(WorkflowError):
    """The session cannot close as not done: its business is pending at the core (the
    answer may still be yes) or the core has applied it already."""


class StepInputError(WorkflowError):
    """What the teller gave with a step request is missing or wrong (an amount the card's
    cryptogram must cover); the message names it."""
