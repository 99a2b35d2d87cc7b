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
import statistics
from pathlib import Path

import httpx
import pytest

from cloud.media.janus import JanusClient
from cloud.media.videoroom import VideoRoom
from cuntong import procs
from cuntong.servers.janus import Janus
from cuntong.servers.mosquitto import Broker
from edge.agent import Agent
from edge.teller import view
from edge.teller.call import Phase
from tests.helpers import CloudProcess, enrolled_link, eventually
from tests.integration.agents import agent_settings, new_id
from tests.terminal.teller_side import (
    TellerPeer,
    connect_message,
    open_room,
    scripted_desk,
)

pytestmark = pytest.mark.servers


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
                # The agent's customer screen shows the call and the teller's video.
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{agent.screen.port}") as h:
                    assert (await h.get("/state")).json()["message"] == "正在和柜员通话"
                    still = await h.get("/video/teller.jpg")
                    assert still.headers["content-type"] == "image/jpeg"
                    assert still.content[:2] == b"\xff\xd8"
                assert teller.seen.loudest > 3000  # the tone
                assert teller.seen.latencies, "no capture stamp readable at the teller"
                median = statistics.median(teller.seen.latencies)
                print(f"glass-to-glass latency median {median:.0f} ms")
                assert 0 <= median < 1500

                # Data channel: the simulated customer answers by itself.
                async def screen_shown() -> bool:
                    teller.send({"type": "screen", "title": "养老金认证", "text": "请看镜头"})
                    await asyncio.sleep(0.3)
                    return agent.teller.paperwork.screen is not None

                await eventually(screen_shown, 15, every=0.2)
                assert agent.teller.paperwork.screen == {"title": "养老金认证", "text": "请看镜头"}
                teller.send(
                    {
                        "type": "form",
                        "form_id": "f1",
                        "title": "确认信息",
                        "fields": [
                            {"name": "ok", "label": "本人办理", "kind": "confirm"},
                            {"name": "bank", "label": "到账", "kind": "choice", "options": ["A"]},
                            {"name": "note", "label": "备注", "kind": "text"},
                        ],
                    }
                )
                teller.send({"type": "sign", "form_id": "f1"})
                teller.send({"type": "capture", "kind": "id_card"})

                def got(kind: str) -> dict | None:
                    return next((t for t in teller.seen.texts if t["type"] == kind), None)

                await eventually(lambda: _async(got("document")), 15)
                assert got("answer") == {
                    "type": "answer",
                    "form_id": "f1",
                    "values": {"ok": True, "bank": "A", "note": "模拟"},
                }
                sig = got("signature")
                assert sig and sig["form_id"] == "f1" and len(sig["strokes"]) == 3
                assert all(len(p) == 3 for s in sig["strokes"] for p in s)
                import base64

                jpeg = base64.b64decode(got("document")["data_b64"])  # type: ignore[index]
                assert jpeg[:2] == b"\xff\xd8" and len(jpeg) > 16 * 1024  # came in chunks

                # Liveness verdict during the call goes with the session.
                await agent.teller.liveness({"score": 91, "passed": True})
                live = await desk.next("liveness")
                assert live == {
                    "type": "liveness",
                    "session": session,
                    "verdict": {"score": 91, "passed": True},
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
