"""Issue 21: a join outside a grant's room is refused *and audited*. The real cloud app
(uvicorn on loopback, its real desk and Janus pool) in front of a real Janus: grants carry
the cloud's gate (``/media/janus/janus-1``), participants signal through it with the
project's own Janus client, and a terminal's token aimed at another call's room is
refused, written to the audit log naming the grant's holder and the room, and reported
to the misbehaviour watch as a rejected act of that terminal."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.media.errors import VideoRoomError
from cloud.sessions.gate import SIGNAL
from cloud.sessions.routing import TellerState
from cloud.sessions.skills import Skills
from cuntong.servers.janus import Janus
from janus_client.janus import JanusClient, JanusSession
from janus_client.videoroom import PLUGIN, VideoRoom
from tests.helpers import eventually
from tests.teller import peers
from tests.teller.gaterig import audit_rows, gated_cloud

UNAUTHORIZED, NO_SUCH_FEED = 433, 428


@pytest.mark.servers
async def test_a_cross_room_join_through_the_gate_is_refused_and_audited(
    tmp_path: Path, janus: Janus
) -> None:
    async with gated_cloud(tmp_path, janus) as cloud:
        desk = cloud.desk
        now = datetime.now(UTC).timestamp()
        for teller in ("t1", "t2"):
            desk.board.add_teller(teller, Skills.of({"pension": 5}, {"cmn"}), now)
            desk.board.set_state(teller, TellerState.AVAILABLE, now)
        await desk.request("call-1", "GT-1", "pension", "cmn", elderly=False)
        await desk.request("call-2", "GT-2", "pension", "cmn", elderly=False)
        teller_1 = await desk.accept("t1", "call-1")
        await desk.accept("t2", "call-2")
        customer_1, customer_2 = desk.calls["call-1"].customer, desk.calls["call-2"].customer
        assert customer_1 is not None and customer_2 is not None
        assert customer_1.janus_url == cloud.gate_url  # grants carry the gate

        # Call 1's own participants work through the gate: publish, then subscribe.
        async with (
            JanusClient(customer_1.janus_url, customer_1.token) as c1,
            c1.session() as s1,
        ):
            pc, _ = await peers.publish(await VideoRoom.attach(s1), "call-1", "customer",
                                        customer_1.pin)  # fmt: skip
            async with JanusClient(teller_1.janus_url, teller_1.token) as t1, t1.session() as st:

                async def subscribed() -> dict[str, object] | None:
                    room = await VideoRoom.attach(st)
                    try:
                        return await room.subscribe("call-1", ["customer"], pin=teller_1.pin)
                    except VideoRoomError as err:
                        if err.code != NO_SUCH_FEED:
                            raise
                        return None

                assert (await eventually(subscribed, timeout=20))["type"] == "offer"
            assert audit_rows(cloud.db) == []  # nothing refused so far

            # Terminal GT-2's token (a stolen terminal) aims at call 1, even with call 1's PIN.
            async with (
                JanusClient(customer_2.janus_url, customer_2.token) as thief,
                thief.session() as stolen,
            ):
                with pytest.raises(VideoRoomError) as refused:
                    await (await VideoRoom.attach(stolen)).subscribe(
                        "call-1", ["customer"], pin=customer_1.pin
                    )
                assert refused.value.code == UNAUTHORIZED
                with pytest.raises(VideoRoomError) as refused:
                    offer = {"type": "offer", "sdp": pc.localDescription.sdp}
                    await (await VideoRoom.attach(stolen)).publish(
                        "call-1", "intruder", offer, pin=customer_1.pin
                    )
                assert refused.value.code == UNAUTHORIZED
            await pc.close()

        rows = audit_rows(cloud.db)
        assert [(actor, target) for actor, target, _ in rows] == [
            ("terminal:GT-2", "call-1"),
            ("terminal:GT-2", "call-1"),
        ]
        detail = json.loads(rows[0][2])
        assert detail["session"] == "call-2" and detail["terminal"] == "GT-2"
        assert detail["role"] == "customer" and detail["request"] == "join"
        assert cloud.signals == [("GT-2", SIGNAL), ("GT-2", SIGNAL)]
        await desk.hang_up("call-1", "done")
        await desk.hang_up("call-2", "done")


async def test_the_gate_flushes_a_poll_a_dead_gate_left_in_janus(
    tmp_path: Path, janus: Janus
) -> None:
    """A participant's Janus session from before a takeover: the previous leader's gate
    died while carrying its long poll, which waits on inside Janus. The first request the
    new gate carries for that session flushes it, so the answer to the participant's next
    join comes back instead of going to the dead poll (lost, without the flush)."""
    async with gated_cloud(tmp_path, janus) as cloud:
        desk = cloud.desk
        now = datetime.now(UTC).timestamp()
        desk.board.add_teller("t1", Skills.of({"pension": 5}, {"cmn"}), now)
        desk.board.set_state("t1", TellerState.AVAILABLE, now)
        await desk.request("call-f", "GT-F", "pension", "cmn", elderly=False)
        await desk.accept("t1", "call-f")
        customer = desk.calls["call-f"].customer
        assert customer is not None
        # The session, made through the previous gate (here: straight at Janus) ...
        async with JanusClient(janus.url, customer.token) as direct:
            made = await direct.post("", {"janus": "create"})
            session_id = int(made["data"]["id"])
            handle = await JanusSession(direct, session_id).attach(PLUGIN)
        # ... whose long poll that gate was carrying when it died (killed mid-request).
        host, port = janus.url.split("//")[1].split("/")[0].split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /janus/{session_id}?maxev=10&token={customer.token} HTTP/1.1\r\n"
            f"Host: {host}\r\n\r\n".encode()
        )
        await writer.drain()
        await asyncio.sleep(0.5)  # Janus holds it now
        writer.transport.abort()
        await asyncio.sleep(0.2)

        # The participant carries on through the new gate, with the same session.
        async with JanusClient(cloud.gate_url, customer.token) as client:
            session = JanusSession(client, session_id)
            session._queues[handle] = asyncio.Queue()
            session.start()
            try:
                body = {"request": "join", "ptype": "publisher", "room": "call-f",
                        "id": "customer", "pin": customer.pin, "token": customer.token}  # fmt: skip
                event = await session.message(handle, body, wait=15)
                assert event.data.get("videoroom") == "joined", event.data
            finally:
                await session.close()
