"""Tortoise ORM set-up: one function to open the database, one to close it."""

from __future__ import annotations

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
        "apps": {"models": {"models": MODEL_MODULES, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


async def open_db(db_url: str, create_schema: bool = True) -> None:
    # Global fallback: FastAPI runs requests in tasks that do not inherit the lifespan context.
    await Tortoise.init(config=tortoise_config(db_url), _enable_global_fallback=True)
    if create_schema:
        await Tortoise.generate_schemas(safe=True)


async def close_db() -> None:
    await Tortoise.close_connections()
