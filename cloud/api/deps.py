"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cloud.ingest.consumer import IngestConsumer
from cloud.tsdb import TelemetryReader


def _reader(request: Request) -> TelemetryReader:
    return request.app.state.reader  # type: ignore[no-any-return]


def _ingest(request: Request) -> IngestConsumer | None:
    return request.app.state.ingest  # type: ignore[no-any-return]


Reader = Annotated[TelemetryReader, Depends(_reader)]
Ingest = Annotated[IngestConsumer | None, Depends(_ingest)]
