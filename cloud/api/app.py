"""The FastAPI application: built by ``create_app(settings, extensions)``, nothing at import time.

Every JSON route is mounted once under ``/api/v1`` (``API_PREFIX``); pages (the teller app,
the fleet dashboard) and ``/healthz`` sit at the root. The lifespan builds the services once
(``cloud.api.deps.CloudServices``) and routes receive them as dependencies.

Replicas: every API process serves every route, ingests (the shared subscription spreads
the load) and keeps its CRL fresh; the singletons — the teller desk (board, archiver, the
desk's terminal link), the core reconciler and the extensions' jobs (command sender,
rollouts, alerting) — run only on the replica holding the database lease
(``cloud.lease.lead``). On the others ``services.desk`` is None, so teller routes answer
503 there: a load balancer sends them to the leader (``/healthz/leader``).

Packages above the cloud (fleet operations) plug in as ``Extension``s: routers to mount and
background tasks to start. The composition root that chooses them is the launcher's
``cuntong.app.create_app``; the cloud never imports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI

from cloud.api import corelink, ui
from cloud.api.deps import CloudServices, require_admin
from cloud.api.routes import (
    auth,
    evidence,
    health,
    janus_gate,
    media_nodes,
    ops,
    quality,
    teller,
    teller_page,
    terminals,
    workflow,
)
from cloud.auth.harden import harden_audit_log
from cloud.db import close_db, open_db
from cloud.ingest.consumer import LINK_SUFFIXES, IngestConsumer
from cloud.lease import CLOUD, Lease, holder_id, lead
from cloud.ops.feeds import no_live
from cloud.oversight import Oversight
from cloud.security import Security
from cloud.sessions import sources
from cloud.sessions import wiring as teller_desk
from cloud.tsdb import TelemetryReader, TelemetryWriter
from common import __version__
from common.aio import within
from common.http import install_error_handlers
from common.lease import Tenure
from common.periodic import run_every
from common.settings import CloudSettings
from provisioning import admin_api
from provisioning import api as enrol_api

API_PREFIX = "/api/v1"

#: The oversight routers (accounts, RBAC, audit, evidence, quality, ops, workflow).
OVERSIGHT_ROUTERS = (
    auth.router,
    evidence.router,
    quality.router,
    ops.router,
    media_nodes.router,
    workflow.router,
)


#: A background job of which one runs among all replicas: (task name, the coroutine to run).
Singleton = tuple[str, Callable[[], Coroutine[Any, Any, None]]]


class Extension(Protocol):
    """A package that adds routes and background tasks to the cloud app."""

    def routers(self) -> list[APIRouter]:
        """JSON routers, mounted under ``/api/v1``."""
        ...

    def pages(self) -> list[APIRouter]:
        """Page routers (HTML and their assets), mounted at the root."""
        ...

    def start(
        self, app: FastAPI, services: CloudServices, security: Security | None
    ) -> list[Singleton]:
        """Build the extension's services once and return its background jobs: singletons,
        run only on the replica that holds the cloud's lease (``cloud.lease``)."""
        ...


def api_router(
    settings: CloudSettings, security: Security | None, extensions: Sequence[Extension] = ()
) -> APIRouter:
    """Every JSON router of the cloud and its extensions, under ``/api/v1``."""
    api = APIRouter(prefix=API_PREFIX)
    for router in (terminals.router, *OVERSIGHT_ROUTERS):
        api.include_router(router)
    for extension in extensions:
        for router in extension.routers():
            api.include_router(router)
    api.include_router(teller.router)
    if security is not None:
        # Per-address limit: slows claim-token guessing (a refused attempt counts too).
        api.include_router(
            enrol_api.make_router(security.provisioner, prefix="/enrol"),
            dependencies=[Depends(auth.enrol_rate_limit)],
        )
        if settings.admin_token:
            api.include_router(
                admin_api.make_admin_router(
                    security.provisioner,
                    prefix="/provisioning",
                    dependencies=[Depends(require_admin)],
                )
            )
    return api


async def retire_ingest(security: Security) -> None:
    """Leader singleton: end the broker sessions of ingest instances gone for good."""
    every_s = min(60.0, security.settings.ingest_retire_after_s / 2)

    async def beat() -> None:
        await security.end_retired_ingest(datetime.now(UTC), LINK_SUFFIXES)

    await run_every(beat, every_s, name="retired ingest sweep", backoff_s=5)


def create_app(
    settings: CloudSettings,
    extensions: Sequence[Extension] = (),
    *,
    oversight: Oversight | None = None,
) -> FastAPI:
    """The cloud API. ``oversight``: the oversight services to use (tests pass one with a
    fixed clock and cheap password hashing); default ``Oversight.build(settings)``."""
    # Secured mode needs the CA and keys before the routes exist; both live on disk.
    security = Security.build(settings, datetime.now(UTC)) if settings.state_dir else None
    ov = oversight or Oversight.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await open_db(settings.db_url)
        reader = TelemetryReader(settings.tsdb_url)
        tasks = []
        writer = ingest = None
        stop = asyncio.Event()
        stack = contextlib.AsyncExitStack()  # the core link
        lease = Lease(CLOUD, holder_id(), settings.lease_ttl_s)
        serving = asyncio.Event()  # this replica leads and its singletons are up
        try:
            await harden_audit_log()
            await ov.sealer.start()  # so the first finish does not wait for a worker to start
            if security is not None:
                tasks.append(asyncio.create_task(security.keep_crl_fresh(stop), name="crl"))
            if settings.ingest:
                writer = TelemetryWriter(
                    settings.tsdb_url, settings.tsdb_org, settings.tsdb_bucket, settings.tsdb_token
                )
                ingest = IngestConsumer(settings, writer, security)
                tasks.append(asyncio.create_task(ingest.run(), name="ingest"))
            core = corelink.client(settings)
            if core is not None:
                await stack.enter_async_context(core)
            base = CloudServices(
                settings,
                ov,
                reader,
                ingest,
                None,
                contacts=sources.session_contacts,
                live=no_live,
                core=core,
                leading=serving,
            )
            app.state.services = base  # read only by cloud.api.deps.services
            singletons: list[Singleton] = []
            for extension in extensions:  # e.g. fleet operations' sender and rollouts
                singletons += extension.start(app, base, security)

            async def term(_tenure: Tenure) -> None:
                """What the leader replica runs: every singleton of the cloud."""
                async with contextlib.AsyncExitStack() as media:  # the desk's Janus sessions
                    desk, jobs = await teller_desk.start(settings, security, ov, media)
                    if core is not None:
                        jobs.append(corelink.reconciler(settings, ov, core))
                    jobs += [asyncio.create_task(run(), name=name) for name, run in singletons]
                    if security is not None:
                        # The broker never expires our sessions (issue 14): the leader ends
                        # those that should end.
                        sweep = security.sweep_sessions()
                        jobs.append(asyncio.create_task(sweep, name="session-sweep"))
                        retire = retire_ingest(security)
                        jobs.append(asyncio.create_task(retire, name="ingest-retire"))
                    live = desk.live if desk is not None else no_live
                    if desk is not None:
                        for hook in base.on_desk:
                            hook(desk)
                    app.state.services = dataclasses.replace(base, desk=desk, live=live)
                    serving.set()
                    try:
                        await asyncio.gather(*jobs)
                    finally:
                        serving.clear()
                        app.state.services = base
                        for job in jobs:
                            job.cancel()
                        await asyncio.gather(*jobs, return_exceptions=True)

            tasks.append(asyncio.create_task(lead(lease, term), name="lease"))
            # One replica (or the first of several) serves with its desk up; a standby, or a
            # replica restarted before its old lease expired, starts serving meanwhile.
            with contextlib.suppress(TimeoutError):
                await within(serving.wait(), settings.lease_ttl_s + 1.0)
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await stack.aclose()
            if writer is not None:
                await writer.close()
            await reader.close()
            await ov.sealer.aclose()
            await close_db()

    app = FastAPI(
        title="cuntong cloud API",
        version=__version__,
        description="村村通 remote video banking: terminals, telemetry and fleet operations.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(janus_gate.router)  # participants' Janus signalling (issue 21)
    app.include_router(api_router(settings, security, extensions))
    app.include_router(teller_page.router)  # the teller web app's static files
    app.include_router(ui.router)  # the modules every page shares (common.web)
    for extension in extensions:
        for page in extension.pages():
            app.include_router(page)
    return app
