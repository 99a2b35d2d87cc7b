"""The fleet package's exceptions (one branch of ``common.errors.CuntongError``).

CuntongError
└── FleetError            a fleet operation the rules or the registry refuse
    ├── TransitionError   a command lifecycle step the state machine does not allow (ValueError)
    └── GroupNotFound     no terminal group of that name (LookupError)

An OTA version published twice is ``common.errors.PackageExists``.
"""

from __future__ import annotations

from common.errors import CuntongError


class FleetError(CuntongError):
    """Root of the fleet errors."""


class TransitionError(FleetError, ValueError):
    """A transition the state machine does not allow (e.g. a reply to a final command)."""


class GroupNotFound(FleetError, LookupError):
    """No terminal group has that name."""
