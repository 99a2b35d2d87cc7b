"""The cloud: terminals and telemetry, accounts and oversight, the teller desk.

What packages above it (fleet, the launcher) may use is ``__all__`` below; everything
else is internal. The names resolve on first use (PEP 562 ``__getattr__``), so importing
one cloud module does not load the whole API (FastAPI routers, the desk, Janus pool).
``docs/architecture.md`` explains the choice; ``tests/unit/test_public_surface.py``
pins the list.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers only; at run time see __getattr__
    from cloud.api.app import Extension, create_app
    from cloud.api.deps import CloudServices, require
    from cloud.auth import audit
    from cloud.auth.deps import Principal
    from cloud.auth.roles import FLEET_READERS, Role
    from cloud.lease import LeaseLost, fenced
    from cloud.models import Terminal
    from cloud.quality.models import ReviewItem
    from cloud.security import Security, service_client, service_client_id
    from cloud.sessions.models import TellerSession

#: name -> module that defines it
_HOME = {
    "CloudServices": "cloud.api.deps",
    "Extension": "cloud.api.app",
    "FLEET_READERS": "cloud.auth.roles",
    "LeaseLost": "cloud.lease",
    "Principal": "cloud.auth.deps",
    "ReviewItem": "cloud.quality.models",
    "Role": "cloud.auth.roles",
    "Security": "cloud.security",
    "TellerSession": "cloud.sessions.models",
    "Terminal": "cloud.models",
    "audit": "cloud.auth.audit",
    "create_app": "cloud.api.app",
    "fenced": "cloud.lease",
    "require": "cloud.api.deps",
    "service_client": "cloud.security",
    "service_client_id": "cloud.security",
}

__all__ = [
    "FLEET_READERS",
    "CloudServices",
    "Extension",
    "LeaseLost",
    "Principal",
    "ReviewItem",
    "Role",
    "Security",
    "TellerSession",
    "Terminal",
    "audit",
    "create_app",
    "fenced",
    "require",
    "service_client",
    "service_client_id",
]


def __getattr__(name: str) -> Any:
    # Lazy to keep ``import cloud.x`` cheap (not to dodge an import loop: cloud.api.app
    # imports nothing that imports this package's names).
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'cloud' has no attribute {name!r}")
    module = importlib.import_module(home)
    return module if home.endswith(f".{name}") else getattr(module, name)
