"""The FastAPI application: built by ``create_app(settings)``, nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from cloud.api.routes import health, terminals
from cloud.db import close_db, open_db
from cloud.ingest.consumer import IngestConsumer
from cloud.tsdb import TelemetryReader, TelemetryWriter
from cuntong import __version__
from cuntong.settings import CloudSettings


def create_app(settings: CloudSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await open_db(settings.db_url)
        app.state.settings = settings
        app.state.reader = TelemetryReader(settings.tsdb_url)
        app.state.ingest = None
        task = None
        writer = None
        if settings.ingest:
            writer = TelemetryWriter(
                settings.tsdb_url, settings.tsdb_org, settings.tsdb_bucket, settings.tsdb_token
            )
            app.state.ingest = IngestConsumer(settings, writer)
            task = asyncio.create_task(app.state.ingest.run(), name="ingest")
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
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
    return app
