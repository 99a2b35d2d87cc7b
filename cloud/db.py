"""Tortoise ORM set-up: one function to open the database, one to close it."""

from __future__ import annotations

from typing import Any

from tortoise import Tortoise

#: Every module holding models; packages that add models append here.
MODEL_MODULES: list[str] = [
    "cloud.models",
    "provisioning.models",
    # oversight: accounts and audit, evidence records, quality inspection
    "cloud.auth.models",
    "cloud.evidence.models",
    "cloud.quality.models",
    "cloud.workflow.models",
    # teller sessions (read by cloud.ops.sources)
    "cloud.sessions.models",
    # fleet operations: tags, groups, shadows, commands, rollouts, alerts
    "fleet.models",
]


def tortoise_config(db_url: str) -> dict[str, Any]:
    if db_url.startswith("postgres://"):
        db_url = "asyncpg://" + db_url.removeprefix("postgres://")
    return {
        "connections": {"default": db_url},
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
