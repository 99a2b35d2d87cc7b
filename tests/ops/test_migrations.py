"""Schema migrations (aerich) on SQLite and a real PostgreSQL.

The previous release (6191af1) built its schema with ``generate_schemas`` at start-up; its SQL,
written by that release's own models (``scripts/migrations.py baseline 6191af1``), is kept in
``tests/fixtures/schema/``. A database made from it, with rows in it, must come up to date
through the migrations and keep its rows.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.auth.models import Account
from cloud.db import applied_migrations, close_db, open_db
from cloud.ingest.models import IngestDeadLetter
from cloud.models import Terminal
from cuntong.servers.postgres import Postgres
from tests.helpers import fresh_database

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "schema"
MIGRATIONS = sorted(
    (p.name for p in (ROOT / "cloud" / "migrations" / "models").glob("*.py")),
    key=lambda n: int(n.split("_")[0]),
)
T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)

#: Rows as the previous release's API would have stored them (its own column names).
OLD_ROWS = [
    """INSERT INTO "terminal" ("id","province","city","county","village","hw_model",
       "agent_version","versions","online","health","telemetry_seq","created_at")
       VALUES ('T-OLD-1','陕西省','宝鸡市','陈仓区','天王镇','ZN-3','0.1.0','{}',{true},'{}',
       42,'2026-11-30 08:00:00+00:00')""",
    """INSERT INTO "account" ("id","display_name","roles","password_hash","disabled",
       "created_at") VALUES ('wang','王柜员','["teller"]','$argon2id$x',{false},
       '2026-11-30 08:00:00+00:00')""",
]


def _old_rows(dialect: str) -> list[str]:
    true, false = ("TRUE", "FALSE") if dialect == "postgres" else ("1", "0")
    return [row.replace("{true}", true).replace("{false}", false) for row in OLD_ROWS]


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database's URL; the test opens it, this closes it."""
    EXECUTOR_CACHE.clear()  # tortoise caches SQL per table name, not per dialect
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'cloud.sqlite3'}"
    else:
        pg: Postgres = request.getfixturevalue("postgres_server")
        yield await fresh_database(pg, "mig")
    await close_db()


async def _run_sql(url: str, script: str) -> None:
    """Outside tortoise, as the old release's database would have been written."""
    if url.startswith("sqlite://"):
        with sqlite3.connect(url.removeprefix("sqlite://")) as conn:
            conn.executescript(script)
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(script)
    finally:
        await conn.close()


def _dialect(url: str) -> str:
    return "sqlite" if url.startswith("sqlite://") else "postgres"


async def test_upgrades_a_previous_release_database_with_data(empty_db: str) -> None:
    dialect = _dialect(empty_db)
    old_schema = (FIXTURES / f"release-6191af1.{dialect}.sql").read_text(encoding="utf-8")
    await _run_sql(empty_db, old_schema + ";\n".join(_old_rows(dialect)) + ";")

    applied = await open_db(empty_db)

    # The baseline only adds aerich's table there; every later migration runs.
    assert applied == MIGRATIONS and len(MIGRATIONS) >= 2
    assert await applied_migrations() == MIGRATIONS
    terminal = await Terminal.get(id="T-OLD-1")
    assert (terminal.city, terminal.online, terminal.telemetry_seq) == ("宝鸡市", True, 42)
    assert (await Account.get(id="wang")).roles == ["teller"]
    # The table the newer release added works.
    await IngestDeadLetter.create(
        terminal_id="T-OLD-1", kind="event", reason="malformed", detail="x", payload="{",
        received_at=T0,
    )  # fmt: skip
    assert await IngestDeadLetter.filter(terminal_id="T-OLD-1").count() == 1
    await close_db()

    # Opening again (a restart) finds nothing to do and keeps the rows.
    assert await open_db(empty_db) == []
    assert await Terminal.filter(id="T-OLD-1").exists()


async def _columns() -> dict[str, set[tuple[str, str, bool]]]:
    """Every table's (column, type, nullable) as the open database reports it."""
    conn = Tortoise.get_connection("default")
    out: dict[str, set[tuple[str, str, bool]]] = {}
    if conn.schema_generator.DIALECT == "sqlite":
        _, tables = await conn.execute_query(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        )
        for row in tables:
            _, cols = await conn.execute_query(f'PRAGMA table_info("{row["name"]}")')
            out[row["name"]] = {(c["name"], c["type"], not c["notnull"]) for c in cols}
        return out
    _, rows = await conn.execute_query(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public'"
    )
    for r in rows:
        out.setdefault(r["table_name"], set()).add(
            (r["column_name"], r["data_type"], r["is_nullable"] == "YES")
        )
    return out


async def test_migrations_build_what_the_models_describe(
    empty_db: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A fresh database through the migrations has the same tables and columns as one built
    straight from the current models: a model change without a migration fails here."""
    assert await open_db(empty_db) == MIGRATIONS
    migrated = await _columns()
    await close_db()

    EXECUTOR_CACHE.clear()
    if _dialect(empty_db) == "sqlite":
        reference = f"sqlite://{tmp_path / 'reference.sqlite3'}"
    else:
        reference = await fresh_database(request.getfixturevalue("postgres_server"), "ref")
    await open_db(reference, upgrade=False)
    await Tortoise.generate_schemas()
    built = await _columns()
    assert migrated.keys() == built.keys()
    for table in built:
        assert migrated[table] == built[table], table


def test_models_and_migrations_agree() -> None:
    """`scripts/migrations.py check`: aerich finds no model change lacking a migration."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "migrations.py"), "check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "agree" in proc.stdout
