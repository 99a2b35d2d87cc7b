"""Tortoise ORM set-up: open the database (bringing its schema up to date), close it.

The schema is built by migrations (aerich), never by ``generate_schemas``: every schema change
is a file under ``cloud/migrations/models/`` written by ``scripts/migrations.py make NAME``,
with SQL for SQLite and for PostgreSQL. The first one is the schema release 6191af1 created at
start-up, written with ``IF NOT EXISTS``: on a database that release made (it has every table
but no ``aerich`` table) it only adds the ``aerich`` table, and the later migrations run on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url

#: Every module holding models; packages that add models append here.
MODEL_MODULES: list[str] = [
    "cloud.models",
    # ingest's dead-letter table
    "cloud.ingest.models",
    "provisioning.models",
    # oversight: accounts and audit, evidence records, quality inspection
    "cloud.auth.models",
    "cloud.evidence.models",
    "cloud.quality.models",
    "cloud.workflow.models",
    # teller sessions (read by cloud.sessions.sources)
    "cloud.sessions.models",
    # fleet operations: tags, groups, shadows, commands, rollouts, alerts
    "fleet.models",
]

#: aerich's version table ("aerich"), in the same app so migrations see every model.
_AERICH_MODELS = "aerich.models"
#: The migration files (``<location>/<app>/``), shipped in the wheel.
MIGRATIONS = Path(__file__).parent / "migrations"
_APP = "models"
#: pg_advisory_lock key: two processes starting at once must not both run a migration.
_MIGRATION_LOCK = 0x6375_6E74_6F6E_67  # "cuntong"


async def _keep_session(connection: object) -> None:
    """Pool release without asyncpg's reset query.

    By default every connection returned to the pool runs ``RESET ALL; UNLISTEN *; …``: one
    more round trip per query, since tortoise takes a pooled connection per statement. The
    cloud sets no session state (no SET, LISTEN, advisory locks or open cursors), and an open
    transaction is still rolled back by asyncpg before this hook runs.
    """


def tortoise_config(db_url: str) -> dict[str, Any]:
    if db_url.startswith("postgres://"):
        db_url = "asyncpg://" + db_url.removeprefix("postgres://")
    connection = expand_db_url(db_url)
    if db_url.startswith("asyncpg://"):
        connection["credentials"]["reset"] = _keep_session
    elif db_url.startswith("sqlite://"):
        # WAL with synchronous=FULL: a commit survives a power cut, which a bank's record of
        # sessions and business events needs (ingest acknowledges terminals after it). A
        # deployment that prefers speed may pass ?synchronous=NORMAL (WAL keeps the file
        # intact, but an OS crash can lose the last transactions); at 200 teller requests/s
        # that halves SQLite's tail (docs/benchmarks/oversight.md). PostgreSQL is the
        # deployment for scale.
        connection["credentials"].setdefault("synchronous", "FULL")
    return {
        "connections": {"default": connection},
        "apps": {
            _APP: {"models": [*MODEL_MODULES, _AERICH_MODELS], "default_connection": "default"}
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def open_db(db_url: str, upgrade: bool = True) -> list[str]:
    """Connect; with ``upgrade`` apply the migrations the database lacks. Returns their names."""
    # Global fallback: FastAPI runs requests in tasks that do not inherit the lifespan context.
    await Tortoise.init(config=tortoise_config(db_url), _enable_global_fallback=True)
    if not upgrade:
        return []
    try:
        return await upgrade_schema(db_url)
    except BaseException:
        await Tortoise.close_connections()
        raise


async def upgrade_schema(db_url: str) -> list[str]:
    """Apply, in order and each in a transaction, the migrations this database has not had.

    On PostgreSQL a session advisory lock is held meanwhile, so replicas starting together
    take turns (the second finds nothing left to do). On SQLite (one box) nothing else runs.
    """
    from aerich import Command

    command = Command(tortoise_config(db_url), app=_APP, location=str(MIGRATIONS))
    await command.init()  # Tortoise is already up: aerich only reads its version table
    connection = Tortoise.get_connection("default")
    if connection.schema_generator.DIALECT != "postgres":
        return await command.upgrade(run_in_transaction=True)
    async with connection.acquire_connection() as raw:
        await raw.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            return await command.upgrade(run_in_transaction=True)
        finally:
            await raw.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


async def applied_migrations() -> list[str]:
    """The migrations recorded in the open database, oldest first."""
    from aerich.models import Aerich

    return list(await Aerich.filter(app=_APP).order_by("id").values_list("version", flat=True))


async def close_db() -> None:
    await Tortoise.close_connections()
