"""The routers' dependencies, as ``Annotated`` aliases (one per service), and who may pass.

The app builds one ``CloudServices`` in its lifespan (``cloud.api.app.create_app``) and
keeps it as ``app.state.services``; ``services`` below is the only reader of ``app.state``.
A route names what it needs by type::

    async def view(ov: OversightDep, desk: DeskDep, who: Annotated[Principal, Depends(
        require(Role.TELLER))]) -> ...

``DeskDep`` answers 503 while no teller desk runs (no media server configured); the
``...OrNone`` aliases let a route work without it. Tests inject services in two supported
ways: their own ``Oversight`` as ``create_app(settings, oversight=...)`` (it is what the
lifespan uses too), or ``app.dependency_overrides[deps.<function>] = lambda: fake`` for one
dependency (e.g. ``desk_or_none``, ``contacts``, ``live``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from cloud.auth.deps import Principal, authenticate, mark_roles
from cloud.auth.roles import Role
from cloud.ingest.consumer import IngestConsumer
from cloud.media.pool import JanusPool
from cloud.ops.feeds import ContactSource, LiveSource
from cloud.oversight import Oversight
from cloud.sessions.bridge import DeskLink
from cloud.sessions.desk import Desk
from cloud.sessions.outbox import Outbox
from cloud.sessions.watch import Watch
from cloud.sessions.wiring import DeskServices
from cloud.tsdb import TelemetryReader
from common.settings import CloudSettings
from corebank import CoreBankClient


@dataclass(frozen=True, slots=True)
class CloudServices:
    """Everything the cloud's routes use, built once when the app starts."""

    settings: CloudSettings
    oversight: Oversight
    reader: TelemetryReader
    #: The ingest consumer; None when this process does not ingest.
    ingest: IngestConsumer | None
    #: The teller desk; None without Janus nodes.
    desk: DeskServices | None
    contacts: ContactSource
    live: LiveSource
    #: The bank's core (``core_url``); None when no core is configured.
    core: CoreBankClient | None = None
    #: Set while this replica holds the cloud's lease and runs its singletons (the desk
    #: among them); None in apps built without one.
    leading: asyncio.Event | None = None
    #: Called with each desk the leader builds (extensions hook into its parts here: the
    #: desk does not exist when they start, and is built anew at every leader's term).
    on_desk: list[Callable[[DeskServices], None]] = field(default_factory=list)


def services_of(app: FastAPI) -> CloudServices:
    """The running app's services (for tests and benchmarks that look inside)."""
    built: CloudServices = app.state.services
    return built


def services(conn: HTTPConnection) -> CloudServices:
    return services_of(conn.app)


Services = Annotated[CloudServices, Depends(services)]


def settings(s: Services) -> CloudSettings:
    return s.settings


def oversight(s: Services) -> Oversight:
    return s.oversight


def reader(s: Services) -> TelemetryReader:
    return s.reader


def ingest(s: Services) -> IngestConsumer | None:
    return s.ingest


def contacts(s: Services) -> ContactSource:
    return s.contacts


def live(s: Services) -> LiveSource:
    return s.live


def core_or_none(s: Services) -> CoreBankClient | None:
    return s.core


SettingsDep = Annotated[CloudSettings, Depends(settings)]
CoreOrNone = Annotated[CoreBankClient | None, Depends(core_or_none)]
OversightDep = Annotated[Oversight, Depends(oversight)]
Reader = Annotated[TelemetryReader, Depends(reader)]
Ingest = Annotated[IngestConsumer | None, Depends(ingest)]
Contacts = Annotated[ContactSource, Depends(contacts)]
Live = Annotated[LiveSource, Depends(live)]


def clock(ov: OversightDep) -> dt.datetime:
    """The oversight clock's now (tests fix it through their ``Oversight``)."""
    return ov.clock()


Now = Annotated[dt.datetime, Depends(clock)]


# The teller desk: each part on its own, so a test can replace one.
def desk_or_none(s: Services) -> Desk | None:
    return s.desk.desk if s.desk else None


def outbox_or_none(s: Services) -> Outbox | None:
    return s.desk.outbox if s.desk else None


def watch_or_none(s: Services) -> Watch | None:
    return s.desk.watch if s.desk else None


def link_or_none(s: Services) -> DeskLink | None:
    return s.desk.link if s.desk else None


def pool_or_none(s: Services) -> JanusPool | None:
    return s.desk.pool if s.desk else None


DeskOrNone = Annotated[Desk | None, Depends(desk_or_none)]
OutboxOrNone = Annotated[Outbox | None, Depends(outbox_or_none)]
WatchOrNone = Annotated[Watch | None, Depends(watch_or_none)]
LinkOrNone = Annotated[DeskLink | None, Depends(link_or_none)]
PoolOrNone = Annotated[JanusPool | None, Depends(pool_or_none)]


def _why_no_desk(s: CloudServices) -> str:
    if not s.settings.media_nodes():
        return "the teller desk is not running (no media server configured)"
    # Replicas: the desk runs on the one holding the lease (``cloud.lease``).
    return "the teller desk is not running on this replica (a standby; see /healthz/leader)"


def desk(found: DeskOrNone, s: Services) -> Desk:
    if found is None:
        raise HTTPException(503, _why_no_desk(s))
    return found


def pool(found: PoolOrNone, s: Services) -> JanusPool:
    if found is None:
        if s.settings.media_nodes():
            raise HTTPException(503, _why_no_desk(s))
        raise HTTPException(503, "the teller desk is off: no Janus nodes configured")
    return found


DeskDep = Annotated[Desk, Depends(desk)]
PoolDep = Annotated[JanusPool, Depends(pool)]


# Who may pass.
_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorised(why: str) -> HTTPException:
    return HTTPException(401, why, {"WWW-Authenticate": "Bearer"})


def require(*roles: Role | str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting a logged-in account holding any of ``roles``.

    A request carries ``Authorization: Bearer <token>`` from ``POST /api/v1/auth/login``.
    No token, an unknown, revoked or expired one, or a disabled account: 401. A valid login
    without any of the listed roles: 403. There is no implicit super-user: ``admin``
    manages accounts and must be listed on a route to pass it.
    """
    allowed = frozenset(Role(r) for r in roles)
    if not allowed:
        raise ValueError("require() needs at least one role")

    async def dependency(
        conn: HTTPConnection, ov: OversightDep, credentials: Credentials
    ) -> Principal:
        if credentials is None:
            raise _unauthorised("login required")
        who = await authenticate(credentials.credentials, ov.clock(), ov.principals)
        if who is None:
            raise _unauthorised("login expired or invalid")
        if not who.roles & allowed:
            raise HTTPException(403, f"needs role {' or '.join(sorted(allowed))}")
        conn.state.principal = who
        return who

    return mark_roles(dependency, allowed)


def any_account() -> Callable[..., Awaitable[Principal]]:
    """Any logged-in account (e.g. logout, who-am-I)."""
    return require(*Role)


async def require_admin(s: SettingsDep, credentials: Credentials) -> None:
    """Operator routes: a bearer token compared in constant time (RBAC comes with accounts)."""
    expected = s.admin_token
    given = credentials.credentials if credentials else ""
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "operator token required", {"WWW-Authenticate": "Bearer"})
