"""/healthz: is this process able to do its job, and what has ingest seen."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from tortoise import Tortoise

from cloud.api.deps import Ingest, LinkOrNone, PoolOrNone

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(
    ingest: Ingest, link: LinkOrNone, pool: PoolOrNone, response: Response
) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
        checks["database"] = "ok"
    except Exception as err:
        checks["database"] = f"error: {err}"
    if ingest is not None:
        if ingest.write_failing:
            # Messages stay unacknowledged (the broker keeps them) until writes succeed.
            checks["ingest"] = "degraded: store writes failing"
        else:
            checks["ingest"] = "ok" if ingest.ready.is_set() else "connecting"
        checks["ingest_stats"] = ingest.stats.as_dict()
    if link is not None:
        # Reported, not required: the API serves without the desk's terminal link.
        checks["desk_link"] = "ok" if link.ready.is_set() else "connecting"
        checks["desk_stats"] = link.stats.as_dict()
    if pool is not None:
        # Reported, not required: a node down or draining only narrows where calls go.
        checks["media_nodes"] = [n.status() for n in pool.registry.nodes.values()]
    healthy = checks["database"] == "ok" and checks.get("ingest", "ok") == "ok"
    if not healthy:
        response.status_code = 503
    return {"status": "ok" if healthy else "degraded", **checks}
