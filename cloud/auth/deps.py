"""Who a bearer token stands for (``authenticate``), and which roles guard a route.

The FastAPI dependency itself, ``require(role, ...)``, lives with the app's other
dependencies in ``cloud.api.deps`` (it reads the oversight services)::

    router = APIRouter(dependencies=[Depends(require(Role.FLEET_OPERATOR, Role.ADMIN))])
    async def view(who: Annotated[Principal, Depends(require(Role.AUDITOR))]) -> ...

It marks itself with ``mark_roles`` so ``guarded_by``/``unguarded_routes`` can tell, in a
test, that no router ships unguarded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.routing import APIRoute

from cloud.auth.cache import TokenCache
from cloud.auth.models import LoginSession
from cloud.auth.roles import Role


@dataclass(frozen=True, slots=True)
class Principal:
    account_id: str
    roles: frozenset[Role]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def authenticate(
    token: str, now: dt.datetime, cache: TokenCache[Principal] | None = None
) -> Principal | None:
    """The principal a bearer token stands for, or None."""
    digest, tick = token_digest(token), time.monotonic()
    if cache is not None and (hit := cache.get(digest, tick, now)) is not None:
        return hit
    login = await LoginSession.filter(token_sha256=digest).select_related("account").first()
    if login is None or login.revoked or login.expires_at <= now or login.account.disabled:
        return None
    roles = frozenset(Role(r) for r in login.account.roles if r in Role.__members__.values())
    who = Principal(login.account.id, roles)
    if cache is not None:
        cache.put(digest, who, login.expires_at, tick)
    return who


T = TypeVar("T")


def mark_roles(dependency: T, roles: frozenset[Role]) -> T:
    """Record on a guard dependency the roles it admits (read by ``guarded_by``)."""
    dependency.roles = roles  # type: ignore[attr-defined]
    return dependency


def guarded_by(route: Any) -> frozenset[Role] | None:
    """The roles a route admits, or None if no ``require`` guards it."""
    if not isinstance(route, APIRoute):
        return None
    return _roles_in(route.dependant)


def _roles_in(dependant: Any) -> frozenset[Role] | None:
    """The first ``require`` in a dependency tree (a dependency may itself need one)."""
    for dep in dependant.dependencies:
        roles = getattr(dep.call, "roles", None)
        if roles is None:
            roles = _roles_in(dep)
        if roles is not None:
            return roles  # type: ignore[no-any-return]
    return None


def unguarded_routes(routers: Iterable[Any], public: frozenset[str], prefix: str = "") -> list[str]:
    """``METHOD path`` of every route in ``routers`` (APIRouters mounted at ``prefix``)
    without a ``require`` guard, except those named in ``public`` (full paths, as served).
    For a test, so no router ships unguarded.
    """
    missing = []
    for router in routers:
        for route in router.routes:
            inner = getattr(route, "original_router", None)  # a nested include
            if inner is not None:
                context = getattr(route, "include_context", None)
                at = prefix + (getattr(context, "prefix", "") or "")
                missing += unguarded_routes([inner], public, at)
            elif isinstance(route, APIRoute) and guarded_by(route) is None:
                path = prefix + route.path
                missing += [
                    f"{m} {path}"
                    for m in sorted(route.methods or ())
                    if f"{m} {path}" not in public
                ]
    return missing
