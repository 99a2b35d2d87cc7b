"""The FastAPI application: built by ``create_app(settings)``, nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from fastapi import Depends, FastAPI

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
from cuntong import __version__
from cuntong.settings import CloudSettings
from fleet import wiring as fleet
from provisioning import admin_api
from provisioning import api as enrol_api


def create_app(settings: CloudSettings) -> FastAPI:
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
        tasks += fleet.start(app, settings, security)  # fleet operations' background tasks
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
    app.include_router(health.router)
    app.include_router(terminals.router)
    # Oversight (accounts, RBAC, audit, evidence, quality, ops): services + routers.
    oversight.install(app, settings)
    for router in fleet.routers():
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
