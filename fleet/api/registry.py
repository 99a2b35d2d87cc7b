"""/api/v1/fleet: search terminals, tag them, the region tree, static and saved-query groups,
and liveness outcomes per model version."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from cloud import Terminal
from common.http import NamePath, Page, TerminalIdPath
from fleet import outcomes, registry
from fleet.api.deps import Operator, Readers
from fleet.models import Group
from fleet.query import Facts, Selector, region_tree

router = APIRouter(prefix="/fleet", tags=["fleet"], dependencies=Readers)


class TagsIn(BaseModel):
    tags: list[Annotated[str, Field(max_length=32)]] = Field(max_length=32)


class GroupIn(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: Literal["static", "query"]
    selector: dict[str, Any] = {}
    members: list[str] = []
    description: str = Field("", max_length=256)


def _facts(f: Facts) -> dict[str, Any]:
    return {
        "id": f.id,
        "region": dict(f.region),
        "hw_model": f.hw_model,
        "versions": dict(f.versions),
        "tags": sorted(f.tags),
        "status": "online" if f.online else "offline",
    }


def _selector(raw: dict[str, Any]) -> Selector:
    try:
        return Selector.from_dict(raw)
    except ValueError as err:
        raise HTTPException(422, str(err)) from err


@router.get("/terminals")
async def search(
    province: str | None = None,
    city: str | None = None,
    county: str | None = None,
    village: str | None = None,
    hw_model: str | None = None,
    version: Annotated[
        list[str], Query(description="component=version, e.g. agent=0.1.0; repeatable")
    ] = [],  # noqa: B006 - FastAPI reads the default, never mutates it
    tag: Annotated[list[str], Query(description="required tag; repeatable")] = [],  # noqa: B006
    status: Literal["online", "offline"] | None = None,
    q: Annotated[str | None, Query(max_length=64)] = None,
    page: Page = 1,
    page_size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    versions = dict(v.split("=", 1) for v in version if "=" in v)
    sel = _selector(
        {
            "province": province,
            "city": city,
            "county": county,
            "village": village,
            "hw_model": hw_model,
            "versions": versions,
            "tags": tag,
            "online": None if status is None else status == "online",
            "q": q,
        }
    )
    found = await registry.search(sel)
    start = (page - 1) * page_size
    return {
        "items": [_facts(f) for f in found[start : start + page_size]],
        "total": len(found),
        "page": page,
        "page_size": page_size,
        "selector": sel.to_dict(),
    }


@router.put("/terminals/{terminal_id}/tags", dependencies=Operator)
async def put_tags(terminal_id: TerminalIdPath, body: TagsIn) -> dict[str, Any]:
    if not await Terminal.exists(id=terminal_id):
        raise HTTPException(404, f"terminal {terminal_id!r} not found")
    return {"terminal_id": terminal_id, "tags": await registry.set_tags(terminal_id, body.tags)}


@router.get("/regions")
async def regions() -> dict[str, Any]:
    return region_tree(await registry.search(Selector())).to_dict()


@router.get("/overview")
async def overview() -> dict[str, Any]:
    """Fleet totals: online share and the versions in the field."""
    found = await registry.search(Selector())
    versions: dict[str, dict[str, int]] = {}
    for f in found:
        for component, v in f.versions.items():
            counts = versions.setdefault(component, {})
            counts[v] = counts.get(v, 0) + 1
    online = sum(f.online for f in found)
    return {
        "total": len(found),
        "online": online,
        "online_pct": round(100 * online / len(found), 1) if found else 0.0,
        "versions": versions,
    }


@router.get("/model-outcomes")
async def model_outcomes(
    days: Annotated[int, Query(ge=1, le=366)] = 30,
    period: Annotated[str, Query(pattern="^(hour|day|week)$")] = "day",
) -> dict[str, Any]:
    """Liveness pass, manual-review and quality-inspection overturn rates per model version,
    group and period, from real sessions (fleet.model_outcomes)."""
    until = dt.datetime.now(dt.UTC)
    step = {
        "hour": dt.timedelta(hours=1),
        "day": dt.timedelta(days=1),
        "week": dt.timedelta(weeks=1),
    }
    return await outcomes.report(until - dt.timedelta(days=days), until, step[period])


@router.get("/groups")
async def list_groups() -> list[dict[str, Any]]:
    return [_group(g) for g in await Group.all().order_by("name")]


@router.post("/groups", status_code=201, dependencies=Operator)
async def create_group(body: GroupIn) -> dict[str, Any]:
    if body.kind == "query":
        _selector(body.selector)
    if await Group.exists(name=body.name):
        raise HTTPException(409, f"group {body.name!r} exists")
    group = await Group.create(
        name=body.name,
        kind=body.kind,
        selector=body.selector if body.kind == "query" else {},
        members=sorted(set(body.members)) if body.kind == "static" else [],
        description=body.description,
    )
    return _group(group)


@router.delete("/groups/{name}", status_code=204, dependencies=Operator)
async def delete_group(name: NamePath) -> None:
    if not await Group.filter(name=name).delete():
        raise HTTPException(404, f"group {name!r} not found")


@router.get("/groups/{name}/terminals")
async def group_terminals(name: NamePath) -> dict[str, Any]:
    try:
        ids = await registry.members(name)
    except registry.GroupNotFound as err:
        raise HTTPException(404, f"group {name!r} not found") from err
    return {"group": name, "terminals": ids, "total": len(ids)}


def _group(g: Group) -> dict[str, Any]:
    return {
        "name": g.name,
        "kind": g.kind,
        "selector": g.selector,
        "members": g.members,
        "description": g.description,
    }
