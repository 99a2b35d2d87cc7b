"""The oversight services (auth, evidence, quality, ops), built once per API process.

``install(app, settings)`` is the one call ``cloud.api.app.create_app`` makes: it puts an
``Oversight`` on ``app.state.oversight`` and mounts the oversight routers. Tests build their
own ``Oversight`` (fixed clock, cheap password hashing) and assign it after ``create_app``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from fastapi import APIRouter, FastAPI

from cloud.auth import passwords
from cloud.auth.cache import TokenCache
from cloud.auth.deps import Principal
from cloud.auth.harden import harden_audit_log
from cloud.auth.ratelimit import LoginThrottle, RateLimiter
from cloud.evidence.keys import EvidenceKeys, load_or_create
from cloud.evidence.sealer import Sealer
from cloud.ops.kpi import ContactRecord
from cloud.workflow.catalogue import DEFAULT_PATH, Catalogue, load_catalogue
from common import suite as suite_lib
from common.settings import CloudSettings


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the big screen shows besides terminals: the queue and the tellers right now."""

    queued: int = 0
    longest_wait_s: float = 0.0
    #: teller state (available, busy, wrap_up, break, ...) -> count
    tellers: Mapping[str, int] = field(default_factory=dict)


#: ``await contacts(since, until)``: contacts offered in [since, until).
ContactSource = Callable[[dt.datetime, dt.datetime], Awaitable[list[ContactRecord]]]
#: ``await live()``: the queue and teller states now.
LiveSource = Callable[[], Awaitable[LiveState]]


async def _no_contacts(since: dt.datetime, until: dt.datetime) -> list[ContactRecord]:
    return []


async def _no_live() -> LiveState:
    return LiveState()


@dataclass
class Oversight:
    catalogue: Catalogue
    evidence_keys: EvidenceKeys
    evidence_dir: Path
    suite: suite_lib.Suite
    clock: Callable[[], dt.datetime] = _utcnow
    hasher: PasswordHasher = passwords.HASHER
    session_ttl: dt.timedelta = dt.timedelta(hours=8)
    #: Login attempts per client address (generous: a branch's tellers share one NAT
    #: address and log in together at shift start), and wrong passwords per account and
    #: address with a per-account delay instead of a lock (see cloud.auth.ratelimit).
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    login_per_address: RateLimiter = field(default_factory=lambda: RateLimiter(120, 60.0))
    #: Who each bearer token stands for, for a couple of seconds (see cloud.auth.cache).
    principals: TokenCache[Principal] = field(default_factory=TokenCache)
    #: Terminal enrolment attempts per client address (see ``cloud.auth.api.enrol_rate_limit``).
    enrol_per_address: RateLimiter = field(default_factory=lambda: RateLimiter(20, 60.0))
    #: Seals evidence packages in a worker process (see cloud.evidence.sealer).
    sealer: Sealer = field(default_factory=Sealer)

    #: Where KPIs and staffing read finished contacts from, and the big screen reads live
    #: queue and teller states; the teller-session service plugs its own in (see docs).
    contacts: ContactSource = field(default_factory=lambda: _no_contacts)
    live: LiveSource = field(default_factory=lambda: _no_live)

    @property
    def qa_salt(self) -> bytes:
        """Secret salt of the quality-inspection sampling draw (stable across restarts)."""
        return suite_lib.derive_key(self.suite, self.evidence_keys.data_master, "qa-sample-salt")

    @classmethod
    def build(cls, settings: CloudSettings) -> Oversight:
        """Keys and packages under ``state_dir``; without one (the anonymous development
        mode) under the system temp directory, so they at least survive a restart."""
        catalogue = load_catalogue(Path(os.environ.get("CUNTONG_CATALOGUE", DEFAULT_PATH)))
        base = settings.state_dir or Path(tempfile.gettempdir()) / "cuntong-dev-oversight"
        keys = load_or_create(base)
        return cls(catalogue, keys, base / "evidence", suite_lib.Suite(settings.crypto_suite))


def routers() -> list[APIRouter]:
    """The oversight routers (imported here, not at module load: they import this module)."""
    from cloud.auth import api as auth_api
    from cloud.evidence import api as evidence_api
    from cloud.ops import api as ops_api
    from cloud.ops import media as media_api
    from cloud.quality import api as quality_api
    from cloud.workflow import api as workflow_api

    modules = (auth_api, evidence_api, quality_api, ops_api, media_api, workflow_api)
    return [m.router for m in modules]


def install(app: FastAPI, settings: CloudSettings) -> None:
    """Attach the oversight services and routers to the cloud API."""
    app.state.oversight = Oversight.build(settings)
    app.state.oversight.enrol_per_address = RateLimiter(settings.enrol_per_minute, 60.0)
    for router in routers():
        app.include_router(router)
    _after_startup(app, harden_audit_log)


def _after_startup(app: FastAPI, hook: Callable[[], Awaitable[None]]) -> None:
    """Run ``hook`` once the app's own lifespan has opened the database; the sealing
    worker of whichever ``Oversight`` the app holds by then runs for the lifespan."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            await hook()
            sealer = app_.state.oversight.sealer
            await sealer.start()  # so the first finish does not wait for a worker to start
            try:
                yield state
            finally:
                await sealer.aclose()

    app.router.lifespan_context = lifespan
