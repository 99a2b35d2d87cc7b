"""Auth routes: log in and out, accounts (admin), the audit log (auditor)."""

from __future__ import annotations

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
from cloud.auth.roles import Role

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
    now, tick = ov.clock(), time.monotonic()
    for limiter, key in (
        (ov.login_per_address, _client(request)),
        (ov.login_per_account, body.username),
    ):
        if not limiter.allow(key, tick):
            await audit.record(body.username, "login_throttled", _client(request), now)
            raise _limited(limiter.retry_after(key, tick))
    result = await service.login(body.username, body.password, now, ov.session_ttl, ov.hasher)
    if result is None:
        await audit.record(body.username, "login_failed", _client(request), now)
        raise HTTPException(401, "wrong account name or password")
    token, session = result
    await audit.record(body.username, "login", _client(request), now)
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
