"""Integration fixtures: the cloud API as a child process on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from common import procs
from cuntong.servers.mosquitto import Broker
from cuntong.servers.postgres import Postgres
from cuntong.servers.victoria import VictoriaMetrics
from tests.helpers import CloudProcess, fresh_database, start_cloud


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database on each backend the data layer supports."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'cloud.sqlite3'}"
        return
    pg: Postgres = request.getfixturevalue("postgres_server")
    yield await fresh_database(pg)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'cloud.sqlite3'}"


@pytest.fixture
def cloud(
    tmp_path: Path, sqlite_url: str, broker: Broker, victoria: VictoriaMetrics
) -> Iterator[CloudProcess]:
    c = start_cloud(tmp_path, sqlite_url, broker.cfg.port, victoria.url)
    try:
        yield c
    finally:
        procs.stop(c.proc)
