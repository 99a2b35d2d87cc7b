"""/healthz: is this process able to do its job, and what has ingest seen.

503 ("degraded") when the database does not answer, the stores refuse writes, or ingest is
subscribed on no broker; 200 with ingest "reduced" when it is subscribed on some brokers but
not all (a broker host down: terminals fail over to the others). A load balancer checks it.

``/healthz/leader``: 200 only on the replica that holds the cloud's lease and runs its
singletons (the teller desk among them), 503 on a standby; a load balancer's health check
for the routes that must reach the desk (HAProxy's ``desk`` backend, ``cuntong.deploy``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from tortoise import Tortoise

from cloud.api.deps import Ingest, LinkOrNone, PoolOrNone, Services

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(
    ingest: Ingest, link: LinkOrNone, pool: PoolOrNone, s: Services, response: Response
) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    if s.leading is not None:  # reported, not required: a standby serves all but the desk
        checks["leader"] = s.leading.is_set()
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
        checks["database"] = "ok"
    except Exception as err:
        checks["database"] = f"error: {err}"
    if ingest is not None:
        if ingest.write_failing:
            # Messages stay unacknowledged (the broker keeps them) until writes succeed.
            checks["ingest"] = "degraded: store writes failing"
        elif ingest.ready.is_set():
            checks["ingest"] = "ok"
        elif down := ingest.brokers_down():
            # Healthy still: a broker host's death must not take every replica out of the
            # load balancer (each one sees the same brokers).
            checks["ingest"] = f"reduced: not subscribed on broker(s) {', '.join(down)}"
        else:
            checks["ingest"] = "connecting"
        checks["ingest_stats"] = ingest.stats.as_dict()
    if link is not None:
        # Reported, not required: the API serves without the desk's terminal link.
        checks["desk_link"] = "ok" if link.ready.is_set() else "connecting"
        checks["desk_stats"] = link.stats.as_dict()
    if pool is not None:
        # Reported, not required: a node down or draining only narrows where calls go.
        checks["media_nodes"] = [n.status() for n in pool.registry.nodes.values()]
    serving = str(checks.get("ingest", "ok")).startswith(("ok", "reduced"))
    healthy = checks["database"] == "ok" and serving
    if not healthy:
        response.status_code = 503
    return {"status": "ok" if healthy else "degraded", **checks}


@router.get("/healthz/leader")
async def leader(s: Services, response: Response) -> dict[str, Any]:
    leading = s.leading is not None and s.leading.is_set()
    if not leading:
        response.status_code = 503
    return {"leader": leading}
