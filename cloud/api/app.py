"""The FastAPI application: built by ``create_app(settings, extensions)``, nothing at import time.

Every JSON route is mounted once under ``/api/v1`` (``API_PREFIX``); pages (the teller app,
the fleet dashboard) and ``/healthz`` sit at the root. The lifespan builds the services once
(``cloud.api.deps.CloudServices``) and routes receive them as dependencies.

Packages above the cloud (fleet operations) plug in as ``Extension``s: routers to mount and
background tasks to start. The composition root that chooses them is the launcher's
``cuntong.app.create_app``; the cloud never imports them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Protocol

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
from cloud.ingest.consumer import IngestConsumer
from cloud.ops.feeds import no_live
from cloud.oversight import Oversight
from cloud.security import Security
from cloud.sessions import sources
from cloud.sessions import wiring as teller_desk
from cloud.tsdb import TelemetryReader, TelemetryWriter
from common import __version__
from common.http import install_error_handlers
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
    ) -> list[asyncio.Task[None]]:
        """Build the extension's services once and return its background tasks."""
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
        media = contextlib.AsyncExitStack()  # the desk's Janus sessions
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
            desk, desk_tasks = await teller_desk.start(settings, security, ov, media)
            tasks += desk_tasks
            core = corelink.client(settings)
            if core is not None:
                await media.enter_async_context(core)  # closed with the desk's sessions
                tasks.append(corelink.reconciler(settings, ov, core))
            services = CloudServices(
                settings,
                ov,
                reader,
                ingest,
                desk,
                contacts=sources.session_contacts,
                live=desk.live if desk is not None else no_live,
                core=core,
            )
            app.state.services = services  # read only by cloud.api.deps.services
            for extension in extensions:  # e.g. fleet operations' background tasks
                tasks += extension.start(app, services, security)
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await media.aclose()
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
