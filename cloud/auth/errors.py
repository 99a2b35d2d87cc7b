"""The auth package's exceptions."""

from __future__ import annotations

from common.errors import CuntongError


class AuthError(CuntongError):
    """Root of the auth errors."""


class AuditLogImmutable(AuthError):
    """Something tried to change or delete an audit entry."""
