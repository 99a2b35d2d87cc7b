"""``require(role, ...)``: the FastAPI dependency that guards every route.

    router = APIRouter(dependencies=[Depends(require(Role.FLEET_OPERATOR, Role.ADMIN))])
    async def view(who: Annotated[Principal, Depends(require(Role.AUDITOR))]) -> ...

A request carries ``Authorization: Bearer <token>`` from ``POST /api/v1/auth/login``. No
token, an unknown, revoked or expired one, or a disabled account: 401. A valid login without
any of the listed roles: 403. There is no implicit super-user: ``admin`` manages accounts
and must be listed on a route to pass it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cloud.auth.cache import TokenCache
from cloud.auth.models import LoginSession
from cloud.auth.roles import Role

_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True, slots=True)
class Principal:
    account_id: str
    roles: frozenset[Role]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _unauthorised(why: str) -> HTTPException:
    return HTTPException(401, why, {"WWW-Authenticate": "Bearer"})


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


def require(*roles: Role | str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting a logged-in account holding any of ``roles``."""
    allowed = frozenset(Role(r) for r in roles)
    if not allowed:
        raise ValueError("require() needs at least one role")

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise _unauthorised("login required")
        ov = request.app.state.oversight
        who = await authenticate(credentials.credentials, ov.clock(), ov.principals)
        if who is None:
            raise _unauthorised("login expired or invalid")
        if not who.roles & allowed:
            raise HTTPException(403, f"needs role {' or '.join(sorted(allowed))}")
        request.state.principal = who
        return who

    dependency.roles = allowed  # type: ignore[attr-defined]  # read by guarded_by()
    return dependency


def any_account() -> Callable[..., Awaitable[Principal]]:
    """Any logged-in account (e.g. logout, who-am-I)."""
    return require(*Role)


def guarded_by(route: Any) -> frozenset[Role] | None:
    """The roles a route admits, or None if no ``require`` guards it."""
    from fastapi.routing import APIRoute

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


def unguarded_routes(routers: Iterable[Any], public: frozenset[str]) -> list[str]:
    """``METHOD path`` of every route in ``routers`` (APIRouters) without a ``require``
    guard, except those named in ``public``. For a test, so no router ships unguarded.
    """
    from fastapi.routing import APIRoute

    missing = []
    for router in routers:
        for route in router.routes:
            inner = getattr(route, "original_router", None)  # a nested include
            if inner is not None:
                missing += unguarded_routes([inner], public)
            elif isinstance(route, APIRoute) and guarded_by(route) is None:
                missing += [
                    f"{m} {route.path}"
                    for m in sorted(route.methods or ())
                    if f"{m} {route.path}" not in public
                ]
    return missing
