"""The teller router over a desk with in-memory media: auth, call actions, the event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cloud.sessions.api import router
from cloud.sessions.outbox import Outbox
from cloud.sessions.state import Event
from cuntong import procs
from tests.teller.desk_rig import Rig, rig

TOKENS = {"tok-t1": "t1", "tok-t2": "t2"}


async def auth(token: str) -> str | None:
    return TOKENS.get(token)


@pytest.fixture
async def api() -> AsyncIterator[tuple[Rig, httpx.AsyncClient]]:
    r = rig("t1", "t2")
    app = FastAPI()
    app.include_router(router)
    app.state.teller_auth = auth
    app.state.desk = r.desk
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
        yield r, client


def as_teller(teller: str) -> dict[str, str]:
    token = next(t for t, who in TOKENS.items() if who == teller)
    return {"Authorization": f"Bearer {token}"}


async def test_tokens_are_required(api: tuple[Rig, httpx.AsyncClient]) -> None:
    _, client = api
    assert (await client.get("/api/v1/teller/me")).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.get("/api/v1/teller/me", headers=bad)).status_code == 401
    basic = {"Authorization": "Basic tok-t1"}
    assert (await client.get("/api/v1/teller/me", headers=basic)).status_code == 401
    me = await client.get("/api/v1/teller/me", headers=as_teller("t1"))
    assert me.json() == {
        "teller": "t1",
        "state": "available",
        "offer": None,
        "session": None,
        "session_state": None,
    }


async def test_a_call_through_the_routes(api: tuple[Rig, httpx.AsyncClient]) -> None:
    r, client = api
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    me = (await client.get("/api/v1/teller/me", headers=as_teller("t1"))).json()
    assert me["offer"] == "s1"
    wrong = await client.post("/api/v1/teller/sessions/s1/accept", headers=as_teller("t2"))
    assert wrong.status_code == 409  # t1 holds the offer
    grant = await client.post("/api/v1/teller/sessions/s1/accept", headers=as_teller("t1"))
    assert grant.status_code == 200
    assert grant.json()["role"] == "teller" and grant.json()["token"] in r.media.tokens
    me = (await client.get("/api/v1/teller/me", headers=as_teller("t1"))).json()
    assert (me["state"], me["session"], me["session_state"]) == ("busy", "s1", "connected")

    url = "/api/v1/teller/sessions/s1/hang-up"
    assert (await client.post(url, json={}, headers=as_teller("t2"))).status_code == 409
    assert (await client.post(url, json={}, headers=as_teller("t1"))).status_code == 204
    assert r.records[-1].cause == "teller ended the call"
    done = await client.post("/api/v1/teller/me/wrap-up-done", headers=as_teller("t1"))
    assert done.status_code == 204
    assert r.desk.board.tellers["t1"].state.value == "available"
    gone = await client.post("/api/v1/teller/sessions/s1/hang-up", json={}, headers=as_teller("t1"))
    assert gone.status_code == 404


async def test_state_decline_transfer_and_refusals(api: tuple[Rig, httpx.AsyncClient]) -> None:
    r, client = api
    t1, t2 = as_teller("t1"), as_teller("t2")
    state = "/api/v1/teller/me/state"
    assert (await client.post(state, json={"state": "busy"}, headers=t1)).status_code == 422
    assert (await client.post(state, json={"state": "break"}, headers=t1)).status_code == 204
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    assert r.desk.board.offers["s1"].teller_id == "t2"  # t1 is on break
    assert (await client.post("/api/v1/teller/sessions/s1/decline", headers=t2)).status_code == 204
    assert (await client.post(state, json={"state": "available"}, headers=t1)).status_code == 204
    assert (await client.post("/api/v1/teller/sessions/s1/accept", headers=t1)).status_code == 200
    move = "/api/v1/teller/sessions/s1/transfer"
    bad = {"business": "mortgage", "language": "cmn"}
    assert (await client.post(move, json=bad, headers=t1)).status_code == 409
    good = {"business": "pension", "language": "cmn", "cause": "second opinion"}
    assert (await client.post(move, json=good, headers=t1)).status_code == 204
    transfer = next(rec for rec in r.records if rec.event is Event.TRANSFER)
    assert transfer.cause == "second opinion"


async def test_media_failure_is_502_and_no_desk_is_503(api: tuple[Rig, httpx.AsyncClient]) -> None:
    r, client = api
    r.media.broken = True
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    url = "/api/v1/teller/sessions/s1/accept"
    assert (await client.post(url, headers=as_teller("t1"))).status_code == 502
    app = FastAPI()
    app.include_router(router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://cloud"
    ) as bare:
        assert (await bare.get("/api/v1/teller/me", headers=as_teller("t1"))).status_code == 503


async def test_event_stream_delivers_offers() -> None:
    outbox = Outbox()
    r = rig("t1")
    r.desk.notify = outbox.notify  # messages now go out through the outbox
    app = FastAPI()
    app.include_router(router)
    app.state.teller_auth = auth
    app.state.teller_outbox = outbox
    app.state.desk = r.desk
    port = procs.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started)
        base = f"ws://127.0.0.1:{port}/api/v1/teller/events"
        with pytest.raises(InvalidStatus) as refused:  # refused at the handshake
            async with connect(f"{base}?token=nope"):
                pass
        assert refused.value.response.status_code == 403
        async with connect(f"{base}?token=tok-t1") as ws:
            assert json.loads(await ws.recv()) == {"type": "hello", "teller": "t1"}
            await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
            offer = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert (offer["type"], offer["session"]) == ("offer", "s1")
            assert outbox.connected("t1")
        # The client closed: the subscription goes with it, without a message to notice.
        await wait_until(lambda: not outbox.connected("t1"))
    finally:
        server.should_exit = True
        await serving


async def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polling state owned by another task
            await asyncio.sleep(0.01)
