"""The FastAPI application: built by ``create_app(settings, extensions)``, nothing at import time.

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

from cloud import oversight
from cloud.api import ui
from cloud.api.routes import health, terminals
from cloud.auth.api import enrol_rate_limit
from cloud.db import close_db, open_db
from cloud.ingest.consumer import IngestConsumer
from cloud.security import Security, require_admin
from cloud.sessions import api as teller_api
from cloud.sessions import page as teller_page
from cloud.sessions import wiring as teller_desk
from cloud.tsdb import TelemetryReader, TelemetryWriter
from common import __version__
from common.http import install_error_handlers
from common.settings import CloudSettings
from provisioning import admin_api
from provisioning import api as enrol_api


class Extension(Protocol):
    """A package that adds routes and background tasks to the cloud app."""

    def routers(self) -> list[APIRouter]: ...

    def start(
        self, app: FastAPI, settings: CloudSettings, security: Security | None
    ) -> list[asyncio.Task[None]]: ...


def create_app(settings: CloudSettings, extensions: Sequence[Extension] = ()) -> FastAPI:
    # Secured mode needs the CA and keys before the routes exist; both live on disk.
    security = Security.build(settings, datetime.now(UTC)) if settings.state_dir else None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await open_db(settings.db_url)
        app.state.settings = settings
        app.state.reader = TelemetryReader(settings.tsdb_url)
        app.state.ingest = None
        tasks = []
        writer = None
        stop = asyncio.Event()
        if security is not None:
            tasks.append(asyncio.create_task(security.keep_crl_fresh(stop), name="crl"))
        if settings.ingest:
            writer = TelemetryWriter(
                settings.tsdb_url, settings.tsdb_org, settings.tsdb_bucket, settings.tsdb_token
            )
            app.state.ingest = IngestConsumer(settings, writer, security)
            tasks.append(asyncio.create_task(app.state.ingest.run(), name="ingest"))
        for extension in extensions:  # e.g. fleet operations' background tasks
            tasks += extension.start(app, settings, security)
        media = contextlib.AsyncExitStack()  # the desk's Janus sessions
        try:
            tasks += await teller_desk.start(app, settings, security, media)
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await media.aclose()
            if writer is not None:
                await writer.close()
            await app.state.reader.close()
            await close_db()

    app = FastAPI(
        title="cuntong cloud API",
        version=__version__,
        description="村村通 remote video banking: terminals, telemetry and fleet operations.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(terminals.router)
    # Oversight (accounts, RBAC, audit, evidence, quality, ops): services + routers.
    oversight.install(app, settings)
    for extension in extensions:
        for router in extension.routers():
            app.include_router(router)
    app.include_router(teller_api.router)
    app.include_router(teller_page.router)  # the teller web app's static files
    app.include_router(ui.router)  # the modules every page shares (common.web)
    if security is not None:
        # Per-address limit: slows claim-token guessing (a refused attempt counts too).
        app.include_router(
            enrol_api.make_router(security.provisioner),
            dependencies=[Depends(enrol_rate_limit)],
        )
        if settings.admin_token:
            app.include_router(
                admin_api.make_admin_router(
                    security.provisioner, dependencies=[Depends(require_admin)]
                )
            )
    return app
