"""The raw-SQL fast paths (queue, save, search) on both databases the cloud supports."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.db import close_db, open_db
from cloud.models import Terminal
from cuntong.servers.postgres import Postgres
from fleet import lifecycle as lc
from fleet import registry
from fleet.models import FleetCommand
from fleet.query import Selector
from fleet.store import apply, as_lifecycle, enqueue, save
from tests.helpers import fresh_database

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[None]:
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'fleet.sqlite3'}"
    else:
        pg: Postgres = request.getfixturevalue("postgres_server")
        url = await fresh_database(pg, "f")
    # tortoise caches INSERT statements per (connection name, table), not per dialect: a
    # SQLite test earlier in this process would hand PostgreSQL "?" placeholders.
    EXECUTOR_CACHE.clear()
    await open_db(url)
    try:
        yield
    finally:
        await close_db()


async def test_queue_deliver_reply_round_trip(db: None) -> None:
    for i in range(30):
        await Terminal.create(id=f"S{i:03d}", city="宝鸡市", online=i % 2 == 0)
    found = await registry.search(Selector(city="宝鸡市", online=True))
    assert [f.id for f in found] == [f"S{i:03d}" for i in range(0, 30, 2)]
    ids = await enqueue(
        [f.id for f in found], "set_config", {"config": {"音量": 3}}, T0, batch="b1"
    )
    rows = await FleetCommand.filter(id__in=ids)
    assert {r.args["config"]["音量"] for r in rows} == {3} and {r.state for r in rows} == {"queued"}
    for row in rows:
        apply(row, lc.deliver(as_lifecycle(row), T0 + dt.timedelta(seconds=1)))
    await save(rows, ("state", "sent_at", "finished_at", "deadline_at"))
    for row in rows:
        apply(row, lc.on_reply(as_lifecycle(row), True, T0 + dt.timedelta(seconds=2)))
        row.result = {"reported": {"音量": 3}, "row": row.terminal_id}
    await save(rows, ("state", "finished_at", "deadline_at", "result"))
    back = await FleetCommand.get(id=ids[0])
    assert back.state == "succeeded" and back.result == {
        "reported": {"音量": 3},
        "row": back.terminal_id,
    }
    assert back.sent_at == T0 + dt.timedelta(seconds=1)
    assert back.finished_at == T0 + dt.timedelta(seconds=2)
