"""/api/v1/fleet/alerts: the alerts, acknowledged and cleared by operators."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from common.http import IntIdPath, TerminalIdQuery
from fleet.alerting import LIVE, public
from fleet.api.deps import Operator, Readers, Who, audited, now
from fleet.models import AlertDoc

router = APIRouter(prefix="/fleet/alerts", tags=["fleet alerts"], dependencies=Readers)


@router.get("")
async def list_alerts(
    state: Literal["active", "open", "acked", "cleared", "all"] = "active",
    terminal_id: TerminalIdQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    query = AlertDoc.all()
    if state == "active":
        query = query.filter(state__in=LIVE)
    elif state != "all":
        query = query.filter(state=state)
    if terminal_id:
        query = query.filter(terminal_id=terminal_id)
    return [public(a) for a in await query.order_by("-last_at").limit(limit)]


async def _alert(alert_id: int) -> AlertDoc:
    alert = await AlertDoc.get_or_none(id=alert_id)
    if alert is None:
        raise HTTPException(404, f"alert {alert_id} not found")
    return alert


@router.post("/{alert_id}/ack", dependencies=Operator)
async def ack(alert_id: IntIdPath, who: Who) -> dict[str, Any]:
    alert = await _alert(alert_id)
    if alert.state != "open":
        raise HTTPException(409, f"cannot acknowledge a {alert.state} alert")
    alert.state, alert.acked_at, alert.acked_by = "acked", now(), who.account_id
    await alert.save()
    await audited(who, "fleet_alert_ack", str(alert_id))
    return public(alert)


@router.post("/{alert_id}/clear", dependencies=Operator)
async def clear(alert_id: IntIdPath, who: Who) -> dict[str, Any]:
    alert = await _alert(alert_id)
    if alert.state == "cleared":
        raise HTTPException(409, "already cleared")
    alert.state, alert.cleared_at = "cleared", now()
    await alert.save()
    await audited(who, "fleet_alert_clear", str(alert_id))
    return public(alert)
