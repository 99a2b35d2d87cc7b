"""Errors of the edge vision pipeline (model trust errors live in `models.errors`)."""

from __future__ import annotations

from common.errors import CuntongError


class VisionError(CuntongError):
    """The vision pipeline cannot run on this input or configuration."""


class BadFrame(VisionError, ValueError):
    """A frame is not an H×W×3 uint8 RGB array."""
