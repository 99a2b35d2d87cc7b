"""The evidence package's exceptions."""

from __future__ import annotations

from common.errors import CuntongError


class EvidenceError(CuntongError):
    """Root of the evidence errors."""


class PackageFormatError(EvidenceError, ValueError):
    """A package file is not a cuntong evidence package (garbage, wrong format version)."""


class RetentionError(EvidenceError):
    """Evidence cannot be deleted yet (retention period running or legal hold)."""
