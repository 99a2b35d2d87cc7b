"""Operators' view of the media tier: each Janus node's health, draining and load, and
draining a node at run time (before an upgrade) without restarting the desk.

Draining here lasts until the API restarts; the node's ``draining`` setting is what a
restart starts with. Every change is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from cloud.api.deps import Now, PoolDep, require
from cloud.auth import audit
from cloud.auth.deps import Principal
from cloud.auth.roles import Role
from common.http import NamePath

router = APIRouter(prefix="/ops/media", tags=["ops"])
Viewer = Annotated[Principal, Depends(require(Role.FLEET_OPERATOR, Role.SUPERVISOR, Role.ADMIN))]
Operator = Annotated[Principal, Depends(require(Role.FLEET_OPERATOR, Role.ADMIN))]


class Draining(BaseModel):
    draining: bool


@router.get("/nodes")
async def nodes(pool: PoolDep, _: Viewer) -> list[dict[str, Any]]:
    """Every node: name, healthy, draining, rooms, capacity (as on /healthz)."""
    return [n.status() for n in pool.registry.nodes.values()]


@router.put("/nodes/{name}/draining")
async def set_draining(
    name: NamePath, body: Draining, pool: PoolDep, now: Now, who: Operator
) -> dict[str, Any]:
    """Stop (or resume) placing new calls on a node; its calls finish where they are."""
    registry = pool.registry
    node = registry.nodes.get(name)
    if node is None:
        raise HTTPException(404, f"no Janus node {name!r}")
    registry.drain(name, body.draining)
    action = "media_drain" if body.draining else "media_undrain"
    await audit.record(who.account_id, action, name, now, rooms=node.rooms)
    return node.status()
