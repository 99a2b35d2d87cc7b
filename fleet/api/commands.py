"""/api/v1/fleet/commands: send commands to terminals, a group or a list; follow them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field, model_validator
from tortoise.functions import Count

from common.http import BatchPath, CommandIdPath, StateQuery, TerminalIdQuery
from fleet import lifecycle as lc
from fleet import registry
from fleet.api.deps import Operator, PackagesOrNone, Readers, Sender, Who, audited, now
from fleet.api.packages import complete_args
from fleet.models import FleetCommand
from fleet.store import apply, as_lifecycle, enqueue, public

router = APIRouter(prefix="/fleet/commands", tags=["fleet commands"], dependencies=Readers)


class CommandIn(BaseModel):
    name: str
    args: dict[str, Any] = {}
    terminals: list[str] = Field([], max_length=20_000)
    group: str | None = None
    #: How long the command may wait for an offline terminal (default: per command).
    ttl_s: float | None = Field(None, gt=0, le=30 * 24 * 3600)
    #: Destructive commands (wipe) must be confirmed explicitly.
    confirm: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> CommandIn:
        if bool(self.terminals) == bool(self.group):
            raise ValueError("give either terminals or group")
        return self


@router.post("", status_code=201, dependencies=Operator)
async def send(
    body: CommandIn, sender: Sender, packages: PackagesOrNone, request: Request, who: Who
) -> dict[str, Any]:
    spec = lc.COMMANDS.get(body.name)
    if spec is None:
        raise HTTPException(422, f"unknown command {body.name!r}; known: {sorted(lc.COMMANDS)}")
    if spec.destructive and not body.confirm:
        raise HTTPException(422, f"{body.name!r} is destructive: set confirm=true")
    if body.group:
        try:
            targets = await registry.members(body.group)
        except registry.GroupNotFound as err:
            raise HTTPException(404, f"group {body.group!r} not found") from err
    else:
        targets = sorted(set(body.terminals))
    args = complete_args(packages, str(request.base_url), body.name, body.args)
    batch = uuid.uuid4().hex
    ttl = dt.timedelta(seconds=body.ttl_s) if body.ttl_s else None
    ids = await enqueue(targets, body.name, args, now(), ttl, batch)
    target = f"group:{body.group}" if body.group else ",".join(targets[:20])
    await audited(who, f"fleet_command:{body.name}", target, batch=batch, count=len(ids))
    sender.kick()
    return {"batch": batch, "count": len(ids), "commands": ids[:1000]}


@router.get("/batches/{batch}")
async def batch_progress(batch: BatchPath) -> dict[str, Any]:
    """Counts per state for a broadcast: what the operator watches while it runs."""
    rows = (
        await FleetCommand.filter(batch=batch)
        .annotate(n=Count("id"))
        .group_by("state")
        .values_list("state", "n")
    )
    if not rows:
        raise HTTPException(404, f"batch {batch!r} not found")
    counts = {state: n for state, n in rows}
    return {"batch": batch, "total": sum(counts.values()), "states": counts}


@router.get("/{command_id}")
async def get_command(command_id: CommandIdPath) -> dict[str, Any]:
    row = await FleetCommand.get_or_none(id=command_id)
    if row is None:
        raise HTTPException(404, f"command {command_id!r} not found")
    return public(row)


@router.post("/{command_id}/cancel", dependencies=Operator)
async def cancel(command_id: CommandIdPath, who: Who) -> dict[str, Any]:
    row = await FleetCommand.get_or_none(id=command_id)
    if row is None:
        raise HTTPException(404, f"command {command_id!r} not found")
    try:
        apply(row, lc.cancel(as_lifecycle(row), now()))
    except lc.TransitionError as err:
        raise HTTPException(409, str(err)) from err
    await row.save()
    await audited(who, "fleet_command_cancel", row.terminal_id, command=row.id)
    return public(row)


@router.get("")
async def list_commands(
    terminal_id: TerminalIdQuery = None,
    state: StateQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    query = FleetCommand.all()
    if terminal_id:
        query = query.filter(terminal_id=terminal_id)
    if state:
        query = query.filter(state=state)
    return [public(r) for r in await query.order_by("-created_at").limit(limit)]
