"""/api/v1/teller: what a teller's screen calls, and the WebSocket it listens on.

The app that mounts ``router`` puts three things on ``app.state``:

- ``desk``: the ``cloud.sessions.desk.Desk`` (its ``notify`` being ``outbox.notify``);
- ``teller_outbox``: the ``cloud.sessions.outbox.Outbox`` the WebSocket subscribes to;
- ``teller_auth``: ``async (token) -> teller id | None``, e.g. ``store.teller_for_token``.

Every route acts as the teller the bearer token belongs to (the WebSocket takes the token
as a ``token`` query parameter, as browsers cannot set headers on WebSockets, and refuses
a bad one at the handshake with HTTP 403). Desk
refusals become 409, media failures 502, a missing desk 503.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Request, WebSocket
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketDisconnect

from cloud.media.errors import MediaError
from cloud.sessions.desk import Desk
from cloud.sessions.errors import SessionError
from cloud.sessions.grants import Message
from cloud.sessions.outbox import Outbox
from cloud.sessions.routing import TellerState

router = APIRouter(prefix="/api/v1/teller", tags=["teller"])

TellerAuth = Callable[[str], Awaitable[str | None]]
T = TypeVar("T")


def _desk(request: Request) -> Desk:
    desk = getattr(request.app.state, "desk", None)
    if desk is None:
        raise HTTPException(503, "the teller desk is not running")
    return desk  # type: ignore[no-any-return]


async def _teller(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    auth: TellerAuth | None = getattr(request.app.state, "teller_auth", None)
    teller_id = None
    if scheme.lower() == "bearer" and auth is not None:
        teller_id = await auth(token.strip())
    if teller_id is None:
        raise HTTPException(401, "a valid teller token is required")
    return teller_id


DeskDep = Annotated[Desk, Depends(_desk)]
TellerId = Annotated[str, Depends(_teller)]


async def _run(action: Awaitable[T]) -> T:
    try:
        return await action
    except SessionError as err:
        raise HTTPException(409, str(err)) from err
    except MediaError as err:
        raise HTTPException(502, str(err)) from err


def _own(desk: Desk, teller_id: str, session_id: str) -> None:
    """The session must be this teller's current call."""
    try:
        owner = desk.teller_of(session_id)
    except SessionError as err:
        raise HTTPException(404, str(err)) from err
    if owner != teller_id:
        raise HTTPException(409, f"session {session_id} is not your call")


class StateIn(BaseModel):
    state: Literal["available", "break", "offline"]


class TransferIn(BaseModel):
    business: str = Field(max_length=32)
    language: str = Field(max_length=16)
    cause: str = Field(default="", max_length=200)


class HangUpIn(BaseModel):
    cause: str = Field(default="teller ended the call", max_length=200)


@router.get("/me")
async def me(desk: DeskDep, teller_id: TellerId) -> dict[str, Any]:
    try:
        return desk.teller_view(teller_id)
    except SessionError as err:
        raise HTTPException(404, str(err)) from err


@router.post("/me/state", status_code=204)
async def set_state(body: StateIn, desk: DeskDep, teller_id: TellerId) -> None:
    await _run(desk.teller_state(teller_id, TellerState(body.state)))


@router.post("/me/wrap-up-done", status_code=204)
async def wrap_up_done(desk: DeskDep, teller_id: TellerId) -> None:
    await _run(desk.finish_wrap_up(teller_id))


@router.post("/sessions/{session_id}/accept")
async def accept(session_id: str, desk: DeskDep, teller_id: TellerId) -> Message:
    """Take the offered call; the answer is this teller's media grant."""
    grant = await _run(desk.accept(teller_id, session_id))
    return grant.message()


@router.post("/sessions/{session_id}/decline", status_code=204)
async def decline(session_id: str, desk: DeskDep, teller_id: TellerId) -> None:
    await _run(desk.decline(teller_id, session_id))


@router.post("/sessions/{session_id}/hang-up", status_code=204)
async def hang_up(session_id: str, body: HangUpIn, desk: DeskDep, teller_id: TellerId) -> None:
    _own(desk, teller_id, session_id)
    await _run(desk.hang_up(session_id, body.cause))


@router.post("/sessions/{session_id}/transfer", status_code=204)
async def transfer(session_id: str, body: TransferIn, desk: DeskDep, teller_id: TellerId) -> None:
    await _run(desk.transfer(teller_id, session_id, body.business, body.language, body.cause))


@router.websocket("/events")
async def events(websocket: WebSocket, token: str = "") -> None:
    """The teller's message stream (offers, withdrawals, endings), as JSON text frames."""
    auth: TellerAuth | None = getattr(websocket.app.state, "teller_auth", None)
    outbox: Outbox | None = getattr(websocket.app.state, "teller_outbox", None)
    teller_id = await auth(token) if auth is not None and token else None
    if teller_id is None or outbox is None:
        await websocket.close()  # before accept: the handshake is refused (HTTP 403)
        return
    await websocket.accept()
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
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await sender
