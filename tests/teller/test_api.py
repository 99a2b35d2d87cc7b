"""The teller router in the real cloud app, over a desk with in-memory media: tellers are
oversight accounts, call actions, the customer panel, skill settings, the event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cloud.api import deps
from cloud.auth.models import AuditEntry
from cloud.sessions import store
from cloud.sessions.state import Event
from tests.steps_rig import agent_verdict
from tests.teller.api_rig import TellerCloud, teller_cloud


@pytest.fixture
async def tc(tmp_path: Path) -> AsyncIterator[TellerCloud]:
    async with teller_cloud(tmp_path, "t1", "t2") as c:
        yield c


async def test_a_teller_is_an_account_with_the_teller_role(tc: TellerCloud) -> None:
    assert (await tc.http.get("/api/v1/teller/me")).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await tc.http.get("/api/v1/teller/me", headers=bad)).status_code == 401
    async with await tc.login("ops", "fleet_operator") as ops:
        assert (await ops.get("/api/v1/teller/me")).status_code == 403
    async with await tc.login("t1", "teller") as t1:
        me = (await t1.get("/api/v1/teller/me")).json()
    assert {k: me[k] for k in ("teller", "state", "offer", "session")} == {
        "teller": "t1",
        "state": "available",
        "offer": None,
        "session": None,
    }
    assert me["skills"]["languages"] == ["cmn"] and me["name"] == ""


async def test_a_call_through_the_routes(tc: TellerCloud) -> None:
    r = tc.rig
    t1, t2 = await tc.login("t1", "teller"), await tc.login("t2", "teller")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    assert (await t1.get("/api/v1/teller/me")).json()["offer"] == "s1"
    assert (await t2.post("/api/v1/teller/sessions/s1/accept")).status_code == 409
    grant = await t1.post("/api/v1/teller/sessions/s1/accept")
    assert grant.status_code == 200
    assert grant.json()["role"] == "teller" and grant.json()["token"] in r.media.tokens
    me = (await t1.get("/api/v1/teller/me")).json()
    assert (me["state"], me["session"], me["session_state"]) == ("busy", "s1", "connected")

    url = "/api/v1/teller/sessions/s1/hang-up"
    assert (await t2.post(url, json={})).status_code == 409
    assert (await t1.post(url, json={})).status_code == 204
    assert r.records[-1].cause == "teller ended the call"
    outcome = "/api/v1/teller/sessions/s1/outcome"
    assert (await t2.post(outcome, json={"resolved": True})).status_code == 409
    assert (await t1.post(outcome, json={"resolved": True})).status_code == 204
    assert (await t1.post("/api/v1/teller/me/wrap-up-done")).status_code == 204
    assert r.desk.board.tellers["t1"].state.value == "available"
    assert (await t1.post(url, json={})).status_code == 404
    await t1.aclose()
    await t2.aclose()


async def test_state_decline_transfer_and_refusals(tc: TellerCloud) -> None:
    r = tc.rig
    t1, t2 = await tc.login("t1", "teller"), await tc.login("t2", "teller")
    state = "/api/v1/teller/me/state"
    assert (await t1.post(state, json={"state": "busy"})).status_code == 422
    assert (await t1.post(state, json={"state": "break"})).status_code == 204
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    assert r.desk.board.offers["s1"].teller_id == "t2"  # t1 is on break
    assert (await t2.post("/api/v1/teller/sessions/s1/decline")).status_code == 204
    assert (await t1.post(state, json={"state": "available"})).status_code == 204
    assert (await t1.post("/api/v1/teller/sessions/s1/accept")).status_code == 200
    move = "/api/v1/teller/sessions/s1/transfer"
    assert (
        await t1.post(move, json={"business": "mortgage", "language": "cmn"})
    ).status_code == 409
    good = {"business": "pension", "language": "cmn", "cause": "second opinion"}
    assert (await t1.post(move, json=good)).status_code == 204
    transfer = next(rec for rec in r.records if rec.event is Event.TRANSFER)
    assert transfer.cause == "second opinion"
    await t1.aclose()
    await t2.aclose()


async def test_media_failure_is_502_and_no_desk_is_503(tc: TellerCloud) -> None:
    tc.rig.media.broken = True
    t1 = await tc.login("t1", "teller")
    await tc.rig.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    assert (await t1.post("/api/v1/teller/sessions/s1/accept")).status_code == 502
    tc.app.dependency_overrides[deps.desk_or_none] = lambda: None
    assert (await t1.get("/api/v1/teller/me")).status_code == 503
    await t1.aclose()


async def test_customer_panel_is_masked_own_and_audited(tc: TellerCloud) -> None:
    r = tc.rig
    t1, t2 = await tc.login("t1", "teller"), await tc.login("t2", "teller")
    auditor = await tc.login("audit", "auditor")
    await r.desk.request("s1", "T0042", "pension", "cmn", elderly=True)
    await store.set_request("s1", "ab" * 16, {"name": "张三丰", "id_number": "610102199001011234"})
    offered = r.desk.board.offers["s1"].teller_id
    mine, other = (t1, t2) if offered == "t1" else (t2, t1)
    r.advance(12)
    panel = (await mine.get("/api/v1/teller/sessions/s1")).json()
    assert panel["business"] == {
        "code": "pension",
        "name_zh": "养老金领取资格认证",
        "name_en": "pension eligibility check",
        "risk": "low",
    }
    assert panel["language"] == {"code": "cmn", "name": "Mandarin (Putonghua)"}
    assert panel["elderly"] is True and panel["teller"] == offered
    assert panel["ring_back"] is False  # an ordinary request (test_ring_back: a ring-back)
    assert panel["customer"] == {"name": "张**", "id_number": "6101**********1234"}
    assert panel["liveness"] is None
    assert [h["to"] for h in panel["history"]] == ["requested", "queued", "offered"]
    assert (await other.get("/api/v1/teller/sessions/s1")).status_code == 403
    assert (await mine.get("/api/v1/teller/sessions/nope")).status_code == 404

    verdict = agent_verdict(0.93).masked
    assert await store.set_liveness("s1", "T0042", verdict)
    assert (await mine.post("/api/v1/teller/sessions/s1/accept")).status_code == 200
    panel = (await auditor.get("/api/v1/teller/sessions/s1")).json()
    assert panel["liveness"] == verdict and panel["waited_s"] == 12.0
    assert panel["state"] == "connected"
    reads = await AuditEntry.filter(action="session_view", target="s1").values_list(
        "actor", flat=True
    )
    assert sorted(reads) == sorted([offered, "audit"])
    for client in (t1, t2, auditor):
        await client.aclose()


async def test_supervisor_sets_skills_and_the_desk_routes_on_them(tc: TellerCloud) -> None:
    r = tc.rig
    t3 = await tc.login("t3", "teller")
    supervisor = await tc.login("boss", "supervisor")
    assert (await t3.get("/api/v1/teller/me")).status_code == 404  # no profile yet
    url = "/api/v1/teller/profiles/t3"
    skills = {"businesses": {"agri_loan": 5, "insurance": 2}, "languages": ["cmn", "zh-shaanxi"]}
    assert (await t3.put(url, json=skills)).status_code == 403
    assert (await supervisor.put("/api/v1/teller/profiles/boss", json=skills)).status_code == 404
    bad = {"businesses": {"mortgage": 3}, "languages": ["cmn"]}
    assert (await supervisor.put(url, json=bad)).status_code == 422
    assert (await supervisor.put(url, json=skills)).status_code == 200
    listed = (await supervisor.get("/api/v1/teller/profiles")).json()
    assert listed == [{"teller": "t3", **skills, "languages": ["cmn", "zh-shaanxi"]}]
    assert (
        await t3.post("/api/v1/teller/me/state", json={"state": "available"})
    ).status_code == 204
    await r.desk.request("s9", "T9", "agri_loan", "cmn", elderly=False)
    assert r.desk.board.offers["s9"].teller_id == "t3"  # t1/t2 only do deposits
    assert await AuditEntry.filter(action="teller_skills", target="t3").count() == 1
    await t3.aclose()
    await supervisor.aclose()


async def test_event_stream_takes_the_login_token(tc: TellerCloud) -> None:
    base = tc.url.replace("http", "ws") + "/api/v1/teller/events"
    await (await tc.login("t1", "teller")).aclose()
    await (await tc.login("ops", "fleet_operator")).aclose()
    for token in ("nope", await tc.token("ops")):
        with pytest.raises(InvalidStatus) as refused:  # refused at the handshake
            async with connect(f"{base}?token={token}"):
                pass
        assert refused.value.response.status_code == 403
    async with connect(f"{base}?token={await tc.token('t1')}") as ws:
        assert json.loads(await ws.recv()) == {"type": "hello", "teller": "t1"}
        await tc.rig.desk.request("s1", "T1", "pension", "cmn", elderly=False)
        offer = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (offer["type"], offer["session"]) == ("offer", "s1")
        assert tc.outbox.connected("t1")
    # The client closed: the subscription goes with it, without a message to notice.
    await wait_until(lambda: not tc.outbox.connected("t1"))


async def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polling state owned by another task
            await asyncio.sleep(0.01)
