"""/api/v1/fleet/terminals/{id}/broker: an operator cuts a terminal off the broker, or lets it
back, at once and without a broker reload (the dynamic-security plugin, ``provisioning.dynsec``).

Disable removes the terminal's role and disables its client: the broker disconnects it, and
a reconnect (its certificate is still valid) can neither publish nor subscribe. Enable gives
the role back. Both are audited. The certificate is untouched: to end a terminal for good,
revoke it (``/api/v1/provisioning``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from common.http import TerminalIdPath
from common.topics import valid_terminal_id
from fleet.api.deps import Broker, Operator, Readers, Who, audited
from provisioning.dynsec import BrokerAdmin, BrokerAdminError, ClientState

router = APIRouter(prefix="/fleet/terminals", tags=["fleet broker"], dependencies=Readers)


def _public(state: ClientState) -> dict[str, Any]:
    return {
        "terminal_id": state.username,
        "known": state.exists,
        "enabled": state.enabled,
        "disabled": state.disabled,
        "roles": list(state.roles),
    }


async def _known(admin: BrokerAdmin, terminal_id: str) -> ClientState:
    if not valid_terminal_id(terminal_id):
        raise HTTPException(422, f"invalid terminal id {terminal_id!r}")
    try:
        state = await admin.state(terminal_id)
    except BrokerAdminError as err:
        raise HTTPException(502, f"broker did not answer: {err}") from err
    if not state.exists:
        raise HTTPException(
            404, f"terminal {terminal_id} has no broker client (not enrolled, or revoked)"
        )
    return state


@router.get("/{terminal_id}/broker")
async def broker_state(terminal_id: TerminalIdPath, admin: Broker) -> dict[str, Any]:
    return _public(await _known(admin, terminal_id))


@router.post("/{terminal_id}/broker/disable", dependencies=Operator)
async def disable(terminal_id: TerminalIdPath, admin: Broker, who: Who) -> dict[str, Any]:
    await _known(admin, terminal_id)
    try:
        state = await admin.disable(terminal_id)
    except BrokerAdminError as err:
        raise HTTPException(502, f"broker refused: {err}") from err
    await audited(who, "fleet_broker_disable", terminal_id)
    return _public(state)


@router.post("/{terminal_id}/broker/enable", dependencies=Operator)
async def enable(terminal_id: TerminalIdPath, admin: Broker, who: Who) -> dict[str, Any]:
    await _known(admin, terminal_id)
    try:
        state = await admin.enable(terminal_id)
    except BrokerAdminError as err:
        raise HTTPException(502, f"broker refused: {err}") from err
    await audited(who, "fleet_broker_enable", terminal_id)
    return _public(state)
