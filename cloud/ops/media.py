"""Operators' view of the media tier: each Janus node's health, draining and load, and
draining a node at run time (before an upgrade) without restarting the desk.

Draining here lasts until the API restarts; the node's ``draining`` setting is what a
restart starts with. Every change is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from cloud.auth import audit
from cloud.auth.deps import Principal, require
from cloud.auth.roles import Role
from cloud.media.pool import JanusPool
from common.http import NamePath

router = APIRouter(prefix="/api/v1/ops/media", tags=["ops"])
Viewer = Annotated[Principal, Depends(require(Role.FLEET_OPERATOR, Role.SUPERVISOR, Role.ADMIN))]
Operator = Annotated[Principal, Depends(require(Role.FLEET_OPERATOR, Role.ADMIN))]


class Draining(BaseModel):
    draining: bool


def _pool(request: Request) -> JanusPool:
    pool: JanusPool | None = getattr(request.app.state, "media_pool", None)
    if pool is None:
        raise HTTPException(503, "the teller desk is off: no Janus nodes configured")
    return pool


@router.get("/nodes")
async def nodes(request: Request, _: Viewer) -> list[dict[str, Any]]:
    """Every node: name, healthy, draining, rooms, capacity (as on /healthz)."""
    return [n.status() for n in _pool(request).registry.nodes.values()]


@router.put("/nodes/{name}/draining")
async def set_draining(
    name: NamePath, body: Draining, request: Request, who: Operator
) -> dict[str, Any]:
    """Stop (or resume) placing new calls on a node; its calls finish where they are."""
    registry = _pool(request).registry
    node = registry.nodes.get(name)
    if node is None:
        raise HTTPException(404, f"no Janus node {name!r}")
    registry.drain(name, body.draining)
    action = "media_drain" if body.draining else "media_undrain"
    now = request.app.state.oversight.clock()
    await audit.record(who.account_id, action, name, now, rooms=node.rooms)
    return node.status()
