"""/api/v1/fleet/shadows: desired vs reported configuration, drift, and changing desired."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from cloud import Terminal
from common.http import TerminalIdPath
from common.wire import live_config
from fleet import shadows
from fleet.api.deps import Operator, Readers, Sender, Who, audited, now
from fleet.models import ShadowDoc

router = APIRouter(prefix="/fleet/shadows", tags=["fleet shadows"], dependencies=Readers)


@router.get("/drift")
async def drift() -> list[dict[str, Any]]:
    """Every terminal whose reported configuration lags its desired one."""
    docs = await ShadowDoc.all().order_by("terminal_id")
    return [p for p in (shadows.public(d) for d in docs) if not p["in_sync"]]


@router.get("/schema")
async def schema() -> dict[str, Any]:
    """The JSON Schema a desired document must pass (``common.wire.live_config``): the
    dashboard checks an edit against it as it is typed; this API checks it again."""
    return live_config.LiveConfig.model_json_schema()


@router.get("/{terminal_id}")
async def get_shadow(terminal_id: TerminalIdPath) -> dict[str, Any]:
    doc = await ShadowDoc.get_or_none(terminal_id=terminal_id)
    if doc is None:
        if not await Terminal.exists(id=terminal_id):
            raise HTTPException(404, f"terminal {terminal_id!r} not found")
        doc = ShadowDoc(terminal_id=terminal_id)
    return shadows.public(doc)


@router.patch("/{terminal_id}/desired", dependencies=Operator)
async def patch_desired(
    terminal_id: TerminalIdPath, patch: dict[str, Any], sender: Sender, who: Who
) -> dict[str, Any]:
    """A JSON merge patch on desired (``null`` removes a key); delivery is queued."""
    try:
        doc = await shadows.set_desired(terminal_id, patch, now())
    except live_config.InvalidConfig as err:
        # The field by name (dotted path), so a form can point at it; nothing is stored.
        raise HTTPException(422, {"field": err.field, "error": str(err)}) from err
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    await audited(who, "fleet_shadow_desired", terminal_id, patch=patch)
    sender.kick()
    return shadows.public(doc)
