"""/api/v1/teller: what a teller's screen calls, the WebSocket it listens on, the
customer panel, and the supervisors' skill settings.

Tellers are oversight accounts (``cloud.auth``) holding the ``teller`` role: they log in
with ``POST /api/v1/auth/login`` and send ``Authorization: Bearer <token>``; the teller id
is the account id. The WebSocket takes the same token as a ``token`` query parameter
(browsers cannot set headers on WebSockets) and refuses a bad one, or an account without
the teller role, at the handshake (HTTP 403). A teller comes onto the desk's board with
the skills of their ``TellerProfile`` the first time they call ``/me`` or connect.

The routes get the running desk as dependencies (``cloud.api.deps``): the ``Desk``, the
``Outbox`` the WebSocket subscribes to and the ``Watch`` (a teller whose last connection
closes mid-call is hung up after a grace period); ``cloud.sessions.wiring.start`` builds
them, or none when no media server is configured. Desk refusals become 409, media failures
502, no desk 503.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, WebSocket
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketDisconnect

from cloud.api.deps import (
    DeskDep,
    DeskOrNone,
    Now,
    OutboxOrNone,
    OversightDep,
    Services,
    WatchOrNone,
    require,
)
from cloud.auth import audit
from cloud.auth.deps import Principal, authenticate
from cloud.auth.models import Account
from cloud.auth.roles import SEE_ALL_SESSIONS, Role, may_view_session
from cloud.lease import LeaseLost
from cloud.media.errors import MediaError
from cloud.oversight import Oversight
from cloud.sessions import profiles, store
from cloud.sessions.desk import Desk
from cloud.sessions.errors import SessionError
from cloud.sessions.grants import Message
from cloud.sessions.models import SessionTransition, TellerProfile, TellerSession
from cloud.sessions.panel import Step, panel
from cloud.sessions.routing import TellerState
from cloud.workflow import service as workflow
from cloud.workflow.service import NoSuchWorkflow
from common.aio import cancel_and_wait
from common.http import AccountIdPath, SessionIdPath

router = APIRouter(prefix="/teller", tags=["teller"])

T = TypeVar("T")


async def _teller(who: Annotated[Principal, Depends(require(Role.TELLER))]) -> str:
    return who.account_id


TellerId = Annotated[str, Depends(_teller)]
Manager = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.ADMIN))]
PanelReader = Annotated[Principal, Depends(require(Role.TELLER, *sorted(SEE_ALL_SESSIONS)))]
#: Who may join a call in progress as a third party (watch and listen).
Watcher = Annotated[Principal, Depends(require(Role.SUPERVISOR))]


async def on_board(desk: Desk, teller_id: str) -> None:
    """Bring a teller onto the desk's board with their profile's skills, once."""
    if teller_id in desk.board.tellers:
        return
    skills = await profiles.teller_skills(teller_id, desk.board.policy.businesses)
    if skills is None:
        raise HTTPException(404, f"{teller_id} has no teller profile: a supervisor sets skills")
    await desk.set_skills(teller_id, skills)


async def _run(action: Awaitable[T]) -> T:
    try:
        return await action
    except SessionError as err:
        raise HTTPException(409, str(err)) from err
    except MediaError as err:
        raise HTTPException(502, str(err)) from err
    except LeaseLost as err:  # its fenced write refused: the desk runs on another replica now
        raise HTTPException(503, f"the desk has moved to another replica: {err}") from err


def _own(desk: Desk, teller_id: str, session_id: str, refuse: int = 409) -> None:
    """The session must be this teller's current call (else ``refuse``; unknown: 404)."""
    try:
        owner = desk.teller_of(session_id)
    except SessionError as err:
        raise HTTPException(404, str(err)) from err
    if owner != teller_id:
        raise HTTPException(refuse, f"session {session_id} is not your call")


class StateIn(BaseModel):
    state: Literal["available", "break", "offline"]


class TransferIn(BaseModel):
    business: str = Field(max_length=32)
    language: str = Field(max_length=16)
    cause: str = Field(default="", max_length=200)


class HangUpIn(BaseModel):
    cause: str = Field(default="teller ended the call", max_length=200)


class OutcomeIn(BaseModel):
    resolved: bool


class ProfileIn(BaseModel):
    #: catalogue business code -> proficiency 1-5
    businesses: dict[str, int]
    languages: list[str] = Field(min_length=1)


@router.get("/me")
async def me(desk: DeskDep, teller_id: TellerId) -> dict[str, Any]:
    await on_board(desk, teller_id)
    view = desk.teller_view(teller_id)
    skills = desk.board.tellers[teller_id].skills
    account = await Account.get_or_none(id=teller_id)
    return {
        **view,
        "name": account.display_name if account is not None else "",
        "skills": {"businesses": dict(skills.businesses), "languages": sorted(skills.languages)},
    }


@router.post("/me/state", status_code=204)
async def set_state(body: StateIn, desk: DeskDep, teller_id: TellerId) -> None:
    await on_board(desk, teller_id)
    await _run(desk.teller_state(teller_id, TellerState(body.state)))


@router.post("/me/wrap-up-done", status_code=204)
async def wrap_up_done(desk: DeskDep, teller_id: TellerId) -> None:
    await _run(desk.finish_wrap_up(teller_id))


@router.post("/sessions/{session_id}/accept")
async def accept(
    session_id: SessionIdPath, ov: OversightDep, desk: DeskDep, teller_id: TellerId
) -> Message:
    """Take the offered call; the answer is this teller's media grant. A transferred
    customer's workflow comes along: the steps walked so far, now served by this teller."""
    grant = await _run(desk.accept(teller_id, session_id))
    await workflow.hand_over(ov, session_id, teller_id, ov.clock())
    return grant.message()


@router.post("/sessions/{session_id}/rejoin")
async def rejoin(
    session_id: SessionIdPath,
    ov: OversightDep,
    watch: WatchOrNone,
    desk: DeskDep,
    teller_id: TellerId,
) -> Message:
    """The serving teller's page lost the call's media (reloaded, crashed): a fresh grant
    (the old one is revoked), with the offer's facts under ``call`` to rebuild the view.
    Another teller's call 403, a call not connected (waiting, wrap-up) 409."""
    _own(desk, teller_id, session_id, refuse=403)
    grant = await _run(desk.rejoin(teller_id, session_id))
    now = ov.clock()
    await audit.record(teller_id, "teller_rejoin", session_id, now, feed=grant.feed)
    if watch is not None:
        watch.teller_rejoined(teller_id)
    return {**grant.message(), "call": desk.call_facts(session_id)}


@router.post("/sessions/{session_id}/decline", status_code=204)
async def decline(session_id: SessionIdPath, desk: DeskDep, teller_id: TellerId) -> None:
    await _run(desk.decline(teller_id, session_id))


@router.post("/sessions/{session_id}/hang-up", status_code=204)
async def hang_up(
    session_id: SessionIdPath, body: HangUpIn, desk: DeskDep, teller_id: TellerId
) -> None:
    _own(desk, teller_id, session_id)
    await _run(desk.hang_up(session_id, body.cause))


@router.post("/sessions/{session_id}/transfer", status_code=204)
async def transfer(
    session_id: SessionIdPath, body: TransferIn, desk: DeskDep, teller_id: TellerId
) -> None:
    await _run(desk.transfer(teller_id, session_id, body.business, body.language, body.cause))


@router.post("/sessions/{session_id}/outcome", status_code=204)
async def outcome(session_id: SessionIdPath, body: OutcomeIn, teller_id: TellerId) -> None:
    """The teller's verdict for first-contact resolution (during the call or wrap-up)."""
    row = await TellerSession.get_or_none(id=session_id)
    if row is None:
        raise HTTPException(404, f"unknown session {session_id}")
    if row.teller_id != teller_id:
        raise HTTPException(409, f"session {session_id} is not your call")
    await store.set_outcome(session_id, body.resolved)


@router.get("/live")
async def live_calls(desk: DeskDep, who: Watcher) -> list[Message]:
    """Calls in progress (session, business, teller, terminal, since, who is watching)."""
    return desk.live_calls()


@router.post("/sessions/{session_id}/watch")
async def watch_call(
    session_id: SessionIdPath, ov: OversightDep, desk: DeskDep, who: Watcher
) -> Message:
    """Join a call in progress as a third party; the answer is a grant that subscribes to
    the customer and the teller. Both are told; the audit log and the session's evidence
    timeline record who joined."""
    grant = await _run(desk.join_guest(session_id, who.account_id))
    await _guest_event(ov, who.account_id, session_id, "guest_joined")
    return grant.message()


@router.post("/sessions/{session_id}/watch/leave", status_code=204)
async def leave_call(
    session_id: SessionIdPath, ov: OversightDep, desk: DeskDep, who: Watcher
) -> None:
    await _run(desk.leave_guest(session_id, who.account_id))
    await _guest_event(ov, who.account_id, session_id, "guest_left")


async def _guest_event(ov: Oversight, account: str, session_id: str, kind: str) -> None:
    now = ov.clock()
    await audit.record(account, f"session_{kind}", session_id, now)
    # A session without a workflow (a desk run without the catalogue's steps) has no
    # timeline to add to; the audit entry above still stands.
    with contextlib.suppress(NoSuchWorkflow):
        await workflow.append_event(ov, session_id, kind, account, now, {})


@router.get("/sessions/{session_id}")
async def customer_panel(
    session_id: SessionIdPath, ov: OversightDep, desk: DeskOrNone, s: Services, who: PanelReader
) -> dict[str, Any]:
    """The customer panel: business, language, wait, masked customer, liveness, history.
    A teller reads only the session they are offered or serving; every read is audited.
    ``id_read``: the masked fields of the ID card the customer read before queueing
    (先刷身份证, verified by the desk), until the teller takes it as the ID step."""
    row = await TellerSession.get_or_none(id=session_id)
    if row is None:
        raise HTTPException(404, f"unknown session {session_id}")
    owner = _current_teller(desk, session_id, row.teller_id)
    if not may_view_session(who.account_id, who.roles, owner or ""):
        raise HTTPException(403, f"session {session_id} is not yours")
    steps = [
        Step(r.at, r.event, r.from_state, r.to_state, r.cause, r.teller_id)
        for r in await SessionTransition.filter(session_id=session_id).order_by("id")
    ]
    now = ov.clock()
    await audit.record(who.account_id, "session_view", session_id, now)
    out = panel(row, steps, ov.catalogue, now, owner)
    held = await s.desk.link.held_id_read(session_id) if s.desk is not None else None
    if held is not None:
        out["id_read"] = {k: held.get(k) for k in ("name", "id_number", "age", "elderly")}
    return out


def _current_teller(desk: Desk | None, session_id: str, stored: str | None) -> str | None:
    """Who has the call now: the desk's live view (offer or call), else the stored teller."""
    if desk is None or session_id not in desk.calls:
        return stored
    return desk.watcher_of(session_id)


@router.get("/profiles")
async def list_profiles(_: Manager) -> list[dict[str, Any]]:
    """Every teller's stored skills."""
    return [
        {"teller": p.id, "businesses": p.businesses, "languages": p.languages}
        for p in await TellerProfile.all().order_by("id")
    ]


@router.put("/profiles/{teller_id}")
async def put_profile(
    teller_id: AccountIdPath, body: ProfileIn, now: Now, desk: DeskOrNone, who: Manager
) -> dict[str, Any]:
    """Set a teller account's skills; a running desk routes on them from its next decision."""
    table = None if desk is None else desk.board.policy.businesses
    try:
        skills = await profiles.set_profile(teller_id, body.businesses, body.languages, now, table)
    except LookupError as err:
        raise HTTPException(404, str(err)) from err
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    await audit.record(
        who.account_id, "teller_skills", teller_id, now,
        businesses=body.businesses, languages=sorted(body.languages),
    )  # fmt: skip
    if desk is not None:
        await desk.set_skills(teller_id, skills)
    return {"teller": teller_id, "businesses": body.businesses, "languages": body.languages}


@router.websocket("/events")
async def events(
    websocket: WebSocket,
    ov: OversightDep,
    outbox: OutboxOrNone,
    desk: DeskOrNone,
    watch: WatchOrNone,
    token: str = "",
) -> None:
    """The teller's message stream (offers, withdrawals, endings), as JSON text frames."""
    who = await authenticate(token, ov.clock(), ov.principals) if token else None
    if who is None or Role.TELLER not in who.roles or outbox is None or desk is None:
        await websocket.close()  # before accept: the handshake is refused (HTTP 403)
        return
    teller_id = who.account_id
    try:
        await on_board(desk, teller_id)
    except HTTPException:
        await websocket.close()
        return
    await websocket.accept()
    if watch is not None:
        watch.teller_joined(teller_id)
    try:
        with outbox.subscribe(teller_id) as queue:

            async def pump() -> None:
                await websocket.send_json({"type": "hello", "teller": teller_id})
                while True:
                    await websocket.send_json(await queue.get())

            sender = asyncio.create_task(pump())
            try:
                # Reading is how a closed connection is noticed while no message is due;
                # anything the client sends (pings) is ignored.
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass
            finally:
                await cancel_and_wait(sender, WebSocketDisconnect, RuntimeError)
    finally:  # also when stopped: after unsubscribing, is another connection of theirs open?
        if watch is not None:
            watch.teller_left(teller_id)
