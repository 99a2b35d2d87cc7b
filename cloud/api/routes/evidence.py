"""Evidence routes: view a session's evidence (masked), audited reveal, verify, hold, purge."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel

from cloud.api.deps import OversightDep, require
from cloud.auth import audit
from cloud.auth.deps import Principal
from cloud.auth.masking import mask_fields
from cloud.auth.roles import Role, may_reveal, may_view_session
from cloud.evidence import service
from cloud.evidence.models import EvidenceRecord
from cloud.evidence.verify import verify
from common.http import SessionIdPath

router = APIRouter(prefix="/evidence", tags=["evidence"])

Viewer = Annotated[
    Principal,
    Depends(require(Role.TELLER, Role.SUPERVISOR, Role.REVIEWER, Role.AUDITOR)),
]


class EvidencePublic(BaseModel):
    session_id: str
    business: str
    operator_id: str
    supervisor_id: str | None
    outcome: str
    chain_head: str
    created_at: dt.datetime
    retain_until: dt.datetime
    legal_hold: bool
    deleted_at: dt.datetime | None
    customer: dict[str, Any]


class RevealRequest(BaseModel):
    field: str


class HoldRequest(BaseModel):
    hold: bool
    reason: str = ""


async def _visible(session_id: str, who: Principal) -> EvidenceRecord:
    record = await EvidenceRecord.get_or_none(session_id=session_id)
    # Someone else's session looks exactly like a missing one: no probing for ids.
    if record is None or not may_view_session(who.account_id, who.roles, record.operator_id):
        raise HTTPException(404, "no such session")
    return record


def _public(record: EvidenceRecord, customer: dict[str, Any]) -> EvidencePublic:
    return EvidencePublic(
        **{k: getattr(record, k) for k in EvidencePublic.model_fields if k != "customer"},
        customer=customer,
    )


@router.get("/{session_id}", response_model=EvidencePublic)
async def view(session_id: SessionIdPath, ov: OversightDep, who: Viewer) -> EvidencePublic:
    record = await _visible(session_id, who)
    await audit.record(who.account_id, "evidence_view", session_id, ov.clock())
    return _public(record, mask_fields(service.customer_of(ov, record)))


@router.post("/{session_id}/reveal")
async def reveal(
    session_id: SessionIdPath, body: RevealRequest, ov: OversightDep, who: Viewer
) -> dict[str, str]:
    record = await _visible(session_id, who)
    customer = service.customer_of(ov, record)
    if body.field not in customer:
        raise HTTPException(404, f"no field {body.field!r}")
    if not may_reveal(who.roles, body.field):
        await audit.record(
            who.account_id, "reveal_denied", session_id, ov.clock(), field=body.field
        )
        raise HTTPException(403, f"your role may not see {body.field} in full")
    await audit.record(who.account_id, "reveal", session_id, ov.clock(), field=body.field)
    return {body.field: customer[body.field]}


@router.get("/{session_id}/verify")
async def verify_package(
    session_id: SessionIdPath,
    request: Request,
    ov: OversightDep,
    who: Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.REVIEWER, Role.AUDITOR))],
) -> dict[str, Any]:
    record = await _visible(session_id, who)
    if record.deleted_at is not None:
        raise HTTPException(410, "evidence deleted after its retention period")
    keys = [ov.evidence_keys.seal.public_key(), ov.evidence_keys.tsa.public_key()]
    report = await asyncio.to_thread(verify, Path(record.package_dir), keys, None, ov.catalogue)
    await audit.record(who.account_id, "evidence_verify", session_id, ov.clock(), ok=report.ok)
    return {
        "ok": report.ok,
        "events": report.events,
        "files": report.files,
        "problems": report.problems,
    }


@router.put("/{session_id}/legal-hold", response_model=EvidencePublic)
async def legal_hold(
    session_id: SessionIdPath,
    body: HoldRequest,
    request: Request,
    ov: OversightDep,
    who: Annotated[Principal, Depends(require(Role.AUDITOR))],
) -> EvidencePublic:
    record = await _visible(session_id, who)
    record.legal_hold = body.hold
    await record.save(update_fields=["legal_hold"])
    await audit.record(
        who.account_id, "legal_hold", session_id, ov.clock(), hold=body.hold, reason=body.reason
    )
    return _public(record, mask_fields(service.customer_of(ov, record)))


@router.post("/purge")
async def purge(
    ov: OversightDep, who: Annotated[Principal, Depends(require(Role.ADMIN))]
) -> dict[str, list[str]]:
    return {"deleted": await service.purge_expired(ov, who.account_id, ov.clock())}
