"""Auth routes: log in and out, accounts (admin), the audit log (auditor)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from tortoise.exceptions import IntegrityError

from cloud.api.deps import Now, OversightDep, any_account, require
from cloud.auth import audit, service
from cloud.auth.deps import Principal, token_digest
from cloud.auth.models import Account, AuditEntry
from cloud.auth.roles import Role, grant_refusal
from cloud.oversight import Oversight
from common.http import AccountIdPath

router = APIRouter(tags=["auth"])


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginResponse(BaseModel):
    token: str
    expires_at: dt.datetime
    roles: list[Role]


class AccountCreate(BaseModel):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=10, max_length=256)
    roles: list[Role] = Field(min_length=1)
    display_name: str = ""


class AccountPublic(BaseModel):
    id: str
    display_name: str
    roles: list[Role]
    disabled: bool


class AuditPublic(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    detail: dict[str, object]


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _limited(retry_after: float) -> HTTPException:
    return HTTPException(429, "too many attempts", {"Retry-After": str(int(retry_after) + 1)})


async def enrol_rate_limit(request: Request, ov: OversightDep) -> None:
    """Dependency for the enrolment router: slows claim-token guessing per address."""
    limiter = ov.enrol_per_address
    now = time.monotonic()
    if not limiter.allow(_client(request), now):
        raise _limited(limiter.retry_after(_client(request), now))


@router.post("/auth/login", response_model=LoginResponse)
async def login(body: LoginRequest, request: Request, ov: OversightDep) -> LoginResponse:
    now, tick, address = ov.clock(), time.monotonic(), _client(request)
    throttle = ov.login_throttle
    if not ov.login_per_address.allow(address, tick):
        await audit.record(body.username, "login_throttled", address, now, by="address")
        raise _limited(ov.login_per_address.retry_after(address, tick))
    if (wait := throttle.refused_for(body.username, address, tick)) is not None:
        await audit.record(body.username, "login_throttled", address, now, by="account+address")
        raise _limited(wait)
    # Wrong passwords on this account from anywhere slow every attempt on it; they never
    # refuse one, so a guesser cannot keep its teller from logging in elsewhere.
    if (delay := throttle.delay(body.username, tick)) > 0:
        await asyncio.sleep(delay)
    result = await service.login(body.username, body.password, now, ov.session_ttl, ov.hasher)
    if result is None:
        throttle.failed(body.username, address, time.monotonic())
        await audit.record(body.username, "login_failed", address, now)
        raise HTTPException(401, "wrong account name or password")
    throttle.succeeded(body.username, address)
    token, session = result
    await audit.record(body.username, "login", address, now)
    account = await session.account
    return LoginResponse(
        token=token, expires_at=session.expires_at, roles=[Role(r) for r in account.roles]
    )


@router.post("/auth/logout", status_code=204)
async def logout(
    request: Request, ov: OversightDep, who: Annotated[Principal, Depends(any_account())]
) -> Response:
    token = request.headers["authorization"].partition(" ")[2]
    await service.logout(token)
    ov.principals.drop(token_digest(token))
    await audit.record(who.account_id, "logout", "", ov.clock())
    return Response(status_code=204)


@router.get("/auth/me", response_model=AccountPublic)
async def me(who: Annotated[Principal, Depends(any_account())]) -> Account:
    return await Account.get(id=who.account_id)


@router.post("/accounts", response_model=AccountPublic, status_code=201)
async def create_account(
    body: AccountCreate, ov: OversightDep, who: Annotated[Principal, Depends(require(Role.ADMIN))]
) -> Account:
    for role in body.roles:
        if (why := grant_refusal(who.roles, role)) is not None:
            await audit.record(who.account_id, "role_grant_denied", body.id, ov.clock(), role=role)
            raise HTTPException(403, f"{why}: create the account, then PUT its role")
    try:
        account = await service.create_account(
            body.id, body.password, body.roles, ov.clock(), body.display_name, ov.hasher
        )
    except IntegrityError as err:
        raise HTTPException(409, f"account {body.id} exists") from err
    await audit.record(
        who.account_id,
        "account_create",
        body.id,
        ov.clock(),
        roles=[Role(r) for r in account.roles],
    )
    return account


async def _change_role(
    ov: Oversight, who: Principal, account_id: str, role: Role, add: bool
) -> Account:
    action = "role_grant" if add else "role_revoke"
    if (why := grant_refusal(who.roles, role)) is not None:
        await audit.record(who.account_id, f"{action}_denied", account_id, ov.clock(), role=role)
        raise HTTPException(403, why)
    if account_id == who.account_id:
        raise HTTPException(403, "an account cannot change its own roles")
    account = await Account.get_or_none(id=account_id)
    if account is None:
        raise HTTPException(404, f"no account {account_id}")
    roles = set(account.roles) | {role.value} if add else set(account.roles) - {role.value}
    if not roles:
        raise HTTPException(409, f"{account_id} would be left without a role; disable it instead")
    account.roles = sorted(roles)
    await account.save(update_fields=["roles"])
    await audit.record(who.account_id, action, account_id, ov.clock(), role=role)
    return account


@router.put("/accounts/{account_id}/roles/{role}", response_model=AccountPublic)
async def grant_role(
    account_id: AccountIdPath,
    role: Role,
    ov: OversightDep,
    who: Annotated[Principal, Depends(any_account())],
) -> Account:
    """Grant ``role`` (who may: ``cloud.auth.roles.GRANTED_BY``); takes effect within the
    token cache's 2 s in every API process."""
    return await _change_role(ov, who, account_id, role, add=True)


@router.delete("/accounts/{account_id}/roles/{role}", response_model=AccountPublic)
async def revoke_role(
    account_id: AccountIdPath,
    role: Role,
    ov: OversightDep,
    who: Annotated[Principal, Depends(any_account())],
) -> Account:
    """Take ``role`` away; the same people who may grant it may revoke it."""
    return await _change_role(ov, who, account_id, role, add=False)


@router.get("/accounts", response_model=list[AccountPublic])
async def list_accounts(_: Annotated[Principal, Depends(require(Role.ADMIN))]) -> list[Account]:
    return await Account.all().order_by("id")


@router.get("/audit", response_model=list[AuditPublic])
async def audit_log(
    now: Now,
    who: Annotated[Principal, Depends(require(Role.AUDITOR))],
    actor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntry]:
    query = AuditEntry.all().order_by("-id").limit(limit)
    if actor:
        query = query.filter(actor=actor)
    entries = await query
    # Reading the audit log is itself something an auditor is accountable for.
    await audit.record(who.account_id, "audit_view", actor or "*", now)
    return entries
