"""A whole call from the terminal's side, over the real mTLS broker and real Janus.

An enrolled agent (simulated camera and microphone) asks for a teller; a scripted desk
(cloud service certificate) queues it and hands it the grant; the agent joins Janus,
publishes, and a teller peer receives its frames and tone while the agent receives the
teller's. Over the data channel the teller pushes screen text, a form, a signature request
and a capture request, and gets the simulated customer's answers, strokes and a JPEG. The
broker then restarts under the call: the agent republishes into the same room and the teller
sees it again. Hang-up, liveness and rating reach the desk as the contract says.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
from pathlib import Path

import httpx
import pytest

from common import procs
from cuntong.servers.janus import Janus
from cuntong.servers.mosquitto import Broker
from edge.agent import Agent
from edge.teller import view
from edge.teller.call import Call, Phase
from janus_client.janus import JanusClient
from janus_client.videoroom import VideoRoom
from tests.helpers import CloudProcess, enrolled_link, eventually
from tests.integration.agents import agent_settings, new_id
from tests.steps_rig import agent_verdict
from tests.terminal.teller_side import (
    TellerPeer,
    connect_message,
    open_room,
    scripted_desk,
)

pytestmark = pytest.mark.servers

FORM = {
    "type": "form",
    "form_id": "f1",
    "title": "确认信息",
    "fields": [
        {"name": "ok", "label": "本人办理", "kind": "confirm"},
        {"name": "bank", "label": "到账", "kind": "choice", "options": ["A"]},
        {"name": "note", "label": "备注", "kind": "text"},
    ],
}


async def enrolled_agent(tmp_path: Path, cloud: CloudProcess, tid: str, **kw: object) -> Agent:
    settings = agent_settings(tmp_path, 1, tid, **kw)
    return Agent(settings, link=await enrolled_link(cloud.url, settings.state_dir, tid))


async def test_call_media_data_channel_and_republish(
    tmp_path: Path, secured: tuple[Path, Broker, CloudProcess], janus_node: Janus
) -> None:
    pki, broker, cloud = secured
    tid = new_id("CALL")
    # No vision models needed here: face-aware video is tested on its own.
    agent = await enrolled_agent(
        tmp_path, cloud, tid, face_aware=False, screen_port=procs.free_port()
    )
    run = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 15)
        async with scripted_desk(pki, broker.cfg.port, tid) as desk:
            await agent.teller.ask("pension", elderly=True)
            request = await desk.next("request")
            assert (request["business"], request["elderly"]) == ("pension", True)
            assert len(request["request_id"]) == 32

            session = "sess-" + tid.lower()
            await desk.say(
                {
                    "type": "queued",
                    "request_id": request["request_id"],
                    "session": session,
                    "position": 3,
                    "expected_wait": 170,
                    "ring": 0,
                }
            )
            await eventually(lambda: _async(agent.teller.call.position == 3))
            assert view.message(agent.teller.call) == "前面还有 2 位,预计等待 3 分钟"

            customer_token, teller_token = await open_room(janus_node, session)
            teller = TellerPeer(janus_node, teller_token, session)
            async with teller.joined():
                await desk.say(connect_message(janus_node, session, customer_token, session))
                await eventually(lambda: _async(agent.teller.call.phase is Phase.IN_CALL), 20)
                await teller.subscribe_customer()
                await eventually(lambda: _async(teller.seen.video >= 30), 20)
                peer = agent.teller.peer
                assert peer is not None
                await eventually(lambda: _async(peer.incoming.frames["video"] >= 10), 20)
                assert teller.seen.size == (480, 360)  # the 400 kbit/s rung, not 640x480
                assert teller.seen.loudest > 3000  # the tone
                assert teller.seen.latencies, "no capture stamp readable at the teller"
                median = statistics.median(teller.seen.latencies)
                print(f"glass-to-glass latency median {median:.0f} ms")
                assert 0 <= median < 1500

                # The agent's customer screen shows the call and the teller's video; with the
                # screen served, the customer answers there (a simulated terminal without a
                # screen answers by itself: test_channel).
                screen = httpx.AsyncClient(base_url=f"http://127.0.0.1:{agent.screen.port}")
                async with screen:
                    assert (await screen.get("/state")).json()["message"] == "正在和柜员通话"
                    still = await screen.get("/video/teller.jpg")
                    assert still.headers["content-type"] == "image/jpeg"
                    assert still.content[:2] == b"\xff\xd8"

                    async def screen_shown() -> object:
                        teller.send({"type": "screen", "title": "养老金认证", "text": "请看镜头"})
                        await asyncio.sleep(0.3)
                        return (await screen.get("/state")).json()["screen"]

                    shown = await eventually(screen_shown, 15, every=0.2)
                    assert shown == {"title": "养老金认证", "text": "请看镜头"}
                    teller.send(FORM)
                    teller.send({"type": "sign", "form_id": "f1"})
                    teller.send({"type": "capture", "kind": "id_card"})

                    async def pending() -> object:
                        state = (await screen.get("/state")).json()
                        return state["form"] and state["sign"]

                    await eventually(pending, 15)
                    values = {"ok": True, "bank": "A", "note": "张三本人"}
                    r = await screen.post("/answer", json={"form_id": "f1", "values": values})
                    assert r.status_code == 200 and r.json()["form"] is None
                    strokes = [[[10, 20, 0], [30, 40, 16], [50, 45, 33]]]
                    sign = {"form_id": "f1", "width": 600, "height": 200, "strokes": strokes}
                    assert (await screen.post("/signature", json=sign)).status_code == 200
                    assert (await screen.post("/answer", json={"form_id": "f1"})).status_code == 409

                def got(kind: str) -> dict | None:
                    return next((t for t in teller.seen.texts if t["type"] == kind), None)

                await eventually(lambda: _async(got("document") and got("signature")), 15)
                assert got("answer") == {"type": "answer", "form_id": "f1", "values": values}
                assert got("signature") == {"type": "signature", **sign}
                jpeg = base64.b64decode(got("document")["data_b64"])  # type: ignore[index]
                assert jpeg[:2] == b"\xff\xd8" and len(jpeg) > 16 * 1024  # came in chunks

                # Liveness verdict during the call goes with the session.
                verdict = agent_verdict(0.91).masked
                await agent.teller.liveness(verdict)
                live = await desk.next("liveness")
                assert live == {
                    "type": "liveness",
                    "session": session,
                    "verdict": verdict,
                }

                # The link drops: the broker restarts under the call.
                broker.stop()
                await eventually(lambda: _async(not agent.connected.is_set()), 10)
                broker.start()
                await eventually(lambda: _async(peer.publications == 2), 30)
                await eventually(lambda: _async(agent.teller.call.phase is Phase.IN_CALL), 20)
                async with (
                    JanusClient(janus_node.url, teller_token) as c,
                    c.session() as s,
                ):
                    room = await VideoRoom.attach(s)
                    names = {p["id"] for p in await room.participants(session)}
                assert names == {"customer", "teller"}
                before = teller.seen.video
                await teller.subscribe_customer()  # the teller page resubscribes the same way
                await eventually(lambda: _async(teller.seen.video >= before + 20), 20)

                await agent.teller.end()
                hang = await desk.next("hang_up")
                assert hang == {"type": "hang_up", "session": session, "cause": "customer ended"}
                assert agent.teller.call.phase is Phase.RATING
                assert agent.teller.peer is None
                await agent.teller.rate(5)
                assert await desk.next("rating") == {
                    "type": "rating",
                    "session": session,
                    "score": 5,
                }
    finally:
        agent.stop()
        await asyncio.wait_for(run, 15)


async def _async(value: object) -> object:
    return value


async def test_simulated_customer_asks_and_garbage_from_the_desk_is_counted(
    tmp_path: Path, secured: tuple[Path, Broker, CloudProcess]
) -> None:
    pki, broker, cloud = secured
    tid = new_id("SIMC")
    agent = await enrolled_agent(tmp_path, cloud, tid, sim_teller_every_s=0.5)
    # The desk listens before the agent starts: requests are live, never queued for later.
    async with scripted_desk(pki, broker.cfg.port, tid) as desk:
        run = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 15)
            await desk.say({"type": "ended"})  # no session: refused by the agent, counted
            request = await desk.next("request", timeout=20)
            assert request["business"] in {code for code, _ in view.MENU}
            await desk.say(
                {"type": "refused", "request_id": request["request_id"], "reason": "closed"}
            )

            # Looked at on every turn of the event loop: the next simulated customer (gaps
            # of 0.5 s on average, some far shorter) clears the notice by asking again.
            async def refused_call() -> Call | None:
                call = agent.teller.call
                return call if call.notice == "refused" else None

            refused = await eventually(refused_call, every=0)
            assert view.message(refused) == "这项业务暂时不能视频办理,请到网点办理"
            assert agent.teller.bad_messages == 1
        finally:
            agent.stop()
            await asyncio.wait_for(run, 15)
