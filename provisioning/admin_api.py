"""Operator HTTP API for claims and terminals (the CLI's twin), for the cloud's console.

    app.include_router(make_admin_router(provisioner, dependencies=[Depends(require_admin)]))

    GET  /api/v1/provisioning/claims                        all claims (never the token)
    POST /api/v1/provisioning/claims                        create; the token is in the answer once
    POST /api/v1/provisioning/claims/{id}/revoke
    GET  /api/v1/provisioning/terminals?status=active
    POST /api/v1/provisioning/terminals/{id}/revoke         certificates revoked, broker kicks it
    POST /api/v1/provisioning/terminals/{id}/decommission

The caller must pass its own authentication dependency: these routes mint and revoke
identities.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from fastapi.params import Depends
from pydantic import BaseModel, Field

from common.http import ClaimIdPath, TerminalIdPath
from provisioning.errors import EnrolmentRefused
from provisioning.models import ProvClaim, ProvTerminal
from provisioning.service import Provisioner


class ClaimCreate(BaseModel):
    uses: int = Field(ge=1, le=1_000_000)
    days: float = Field(gt=0, le=366)
    hardware_model: str | None = None
    region_scope: list[str] = Field(default_factory=list, max_length=4)
    id_prefix: str = Field(default="", max_length=32)
    label: str = Field(default="", max_length=128)


class ClaimPublic(BaseModel):
    id: str
    label: str
    hardware_model: str | None
    region_scope: str
    id_prefix: str
    max_uses: int
    uses: int
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None


class ClaimCreated(ClaimPublic):
    token: str


class TerminalPublic(BaseModel):
    id: str
    hardware_model: str
    province: str
    city: str
    county: str
    village: str
    status: str
    claim_id: str
    enrolled_at: dt.datetime
    changed_at: dt.datetime


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _public(model: type[BaseModel], row: Any, **extra: Any) -> Any:
    fields = {name: getattr(row, name) for name in model.model_fields if name not in extra}
    return model(**fields, **extra)


def make_admin_router(
    provisioner: Provisioner,
    dependencies: Sequence[Depends] = (),
    clock: Callable[[], dt.datetime] = _utcnow,
    prefix: str = "/api/v1/provisioning",
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["provisioning"], dependencies=list(dependencies))

    @router.get("/claims", response_model=list[ClaimPublic])
    async def list_claims() -> list[ClaimPublic]:
        return [_public(ClaimPublic, c) for c in await ProvClaim.all().order_by("created_at")]

    @router.post("/claims", response_model=ClaimCreated, status_code=201)
    async def create_claim(body: ClaimCreate) -> ClaimCreated:
        claim, token = await provisioner.create_claim(
            clock(),
            max_uses=body.uses,
            valid_for=dt.timedelta(days=body.days),
            hardware_model=body.hardware_model,
            region_scope=body.region_scope,
            id_prefix=body.id_prefix,
            label=body.label,
        )
        return _public(ClaimCreated, claim, token=token)  # type: ignore[no-any-return]

    @router.post("/claims/{claim_id}/revoke", status_code=204)
    async def revoke_claim(claim_id: ClaimIdPath) -> None:
        if not await provisioner.revoke_claim(claim_id, clock()):
            raise HTTPException(404, {"reason": "unknown_claim"})

    @router.get("/terminals", response_model=list[TerminalPublic])
    async def list_terminals(
        status: Literal["active", "revoked", "decommissioned"] | None = None,
    ) -> list[TerminalPublic]:
        query = ProvTerminal.all().order_by("id")
        if status:
            query = query.filter(status=status)
        return [_public(TerminalPublic, t) for t in await query]

    @router.post("/terminals/{terminal_id}/{action}", status_code=200)
    async def end_terminal(
        terminal_id: TerminalIdPath, action: Literal["revoke", "decommission"]
    ) -> dict[str, int]:
        operation = provisioner.revoke_terminal if action == "revoke" else provisioner.decommission
        try:
            return {"revoked_certificates": await operation(terminal_id, clock())}
        except EnrolmentRefused as err:
            raise HTTPException(404, {"reason": err.reason}) from err

    return router
