"""JanusPool and the desk against real Janus nodes: placement, rooms, tokens that work."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud.media.errors import JanusError, JanusUnauthorized, NoMediaCapacity, VideoRoomError
from cloud.media.pool import JanusPool, NodeAccess
from cloud.sessions.desk import Desk
from cloud.sessions.grants import Message
from cloud.sessions.routing import Board, TellerState
from cloud.sessions.skills import Skills
from cuntong.servers.janus import Janus
from janus_client.janus import JanusClient
from janus_client.videoroom import VideoRoom
from tests.helpers import eventually
from tests.teller import peers

#: VideoRoom's answers without the room's secret: missing (429), wrong (433); 433 is also
#: its answer to a join whose token is not on the room's access list.
MISSING_ELEMENT, UNAUTHORIZED, NO_SUCH_FEED = 429, 433, 428


def access(name: str, server: Janus, rec_dir: Path, capacity: int) -> NodeAccess:
    return NodeAccess(
        name,
        server.url,
        server.admin_url,
        server.cfg.admin_secret,
        server.cfg.room_admin_key,
        str(rec_dir),
        capacity,
    )


async def room_exists(server: Janus, token: str, room: str) -> bool:
    async with JanusClient(server.url, token) as client, client.session() as session:
        return await (await VideoRoom.attach(session)).exists(room)


async def test_pool_places_rooms_and_grants_tokens(
    janus: Janus, second_janus: Janus, tmp_path: Path
) -> None:
    nodes = [access("a", janus, tmp_path, 1), access("b", second_janus, tmp_path, 1)]
    servers = {"a": janus, "b": second_janus}
    async with JanusPool(nodes) as pool:
        first, second = await pool.open_room("r1"), await pool.open_room("r2")
        assert {first.name, second.name} == {"a", "b"}
        with pytest.raises(NoMediaCapacity):
            await pool.open_room("r3")
        await pool.grant(first, "r1", "guest")
        assert await room_exists(servers[first.name], "guest", "r1")
        assert not await room_exists(servers[first.name], "guest", "r2")  # r2 is elsewhere
        await pool.revoke(first, "r1", "guest")
        with pytest.raises(JanusUnauthorized):
            await room_exists(servers[first.name], "guest", "r1")
        await pool.grant(first, "r1", "guest")
        assert (await pool.close_room("r1")) is first
        assert not await room_exists(servers[first.name], "guest", "r1")
        assert await pool.close_room("r1") is None
        assert (await pool.open_room("r3")).name == first.name  # capacity freed


async def test_desk_grants_work_on_janus_until_hang_up(janus: Janus, tmp_path: Path) -> None:
    inbox: list[tuple[str, Message]] = []

    async def notify(address: str, message: Message) -> None:
        inbox.append((address, message))

    board = Board()
    now = datetime.now(UTC)
    board.add_teller("t1", Skills.of({"pension": 5}, {"cmn"}), now.timestamp())
    board.set_state("t1", TellerState.AVAILABLE, now.timestamp())
    async with JanusPool([access("a", janus, tmp_path, 10)]) as pool:
        desk = Desk(board, pool, notify, lambda: datetime.now(UTC))
        await desk.request("sess-9", "T9", "pension", "cmn", elderly=True)
        teller_grant = await desk.accept("t1", "sess-9")
        customer = next(m for a, m in inbox if a == "terminal:T9" and m["type"] == "connect")
        for token in (customer["token"], teller_grant.token):
            assert await room_exists(janus, token, "sess-9")
        await desk.hang_up("sess-9", "done")
        with pytest.raises(JanusUnauthorized):
            await room_exists(janus, customer["token"], "sess-9")
        assert pool.registry.nodes["a"].rooms == 0


async def test_health_check_follows_a_node_down_and_back(
    janus: Janus, second_janus: Janus, tmp_path: Path
) -> None:
    nodes = [access("a", janus, tmp_path, 5), access("b", second_janus, tmp_path, 5)]
    async with JanusPool(nodes) as pool:
        assert await pool.check_health() == {"a": True, "b": True}
        janus.stop()
        assert await pool.check_health() == {"a": False, "b": True}
        assert {(await pool.open_room(f"r{n}")).name for n in range(3)} == {"b"}
        janus.start()  # same ports and secrets: a restarted node that forgot everything
        assert await pool.check_health() == {"a": True, "b": True}
        node = await pool.open_room("r9")
        assert node.name == "a"  # least loaded again
        await pool.grant(node, "r9", "guest")
        assert await room_exists(janus, "guest", "r9")


async def test_pool_starts_with_a_dead_node_marked_down(janus: Janus, tmp_path: Path) -> None:
    dead = NodeAccess("dead", "http://127.0.0.1:9/janus", "http://127.0.0.1:9/admin", "x", "y", "/")
    async with JanusPool([dead, access("a", janus, tmp_path, 5)]) as pool:
        assert not pool.registry.nodes["dead"].healthy
        assert (await pool.open_room("r1")).name == "a"
        with pytest.raises(JanusError):
            await pool.grant(pool.registry.nodes["dead"], "r1", "t")


async def test_grants_carry_the_public_url_while_the_backend_uses_its_own(
    janus: Janus, tmp_path: Path
) -> None:
    public = dataclasses.replace(
        access("a", janus, tmp_path, 1), public_url="https://bank.example/janus"
    )
    async with JanusPool([public]) as pool:
        node = await pool.open_room("r1")  # created through the loopback URL
        assert node.url == "https://bank.example/janus"
        assert await pool.close_room("r1") is node


async def test_participants_cannot_manage_the_room_only_the_desk_can(
    janus: Janus, tmp_path: Path
) -> None:
    async with JanusPool([access("a", janus, tmp_path, 2)]) as pool:
        node = await pool.open_room("r-secret")
        await pool.grant(node, "r-secret", "participant")
        async with JanusClient(janus.url, "participant") as client, client.session() as session:
            room = await VideoRoom.attach(session)
            # A participant's token joins rooms; it cannot kick anyone or end the call.
            with pytest.raises(VideoRoomError) as refused:
                await room.kick("r-secret", "customer")
            assert refused.value.code == MISSING_ELEMENT
            with pytest.raises(VideoRoomError) as refused:
                await room.kick("r-secret", "customer", secret="guessed")
            assert refused.value.code == UNAUTHORIZED
            for secret in (None, "guessed"):
                with pytest.raises(VideoRoomError) as refused:
                    await room.destroy_room("r-secret", secret)
                assert refused.value.code in (MISSING_ELEMENT, UNAUTHORIZED)
            assert await room.exists("r-secret")
            await pool.kick(node, "r-secret", "customer")  # nobody there: fine, and allowed
            assert await pool.close_room("r-secret") is node
            assert not await room.exists("r-secret")


async def test_a_call_token_joins_its_own_room_only(janus: Janus, tmp_path: Path) -> None:
    """Issue 21 item 5: call 2's grant cannot subscribe to call 1 (the room id is the
    session id, easy to learn), nor publish into it; call 1's own grants still join.
    Janus 1.1.2 checks a room's token list on publishers only, so subscribers are held by
    the room's PIN, which only that room's grants carry."""
    inbox: list[tuple[str, Message]] = []

    async def notify(address: str, message: Message) -> None:
        inbox.append((address, message))

    board = Board()
    now = datetime.now(UTC).timestamp()
    for teller in ("t1", "t2"):
        board.add_teller(teller, Skills.of({"pension": 5}, {"cmn"}), now)
        board.set_state(teller, TellerState.AVAILABLE, now)
    async with JanusPool([access("a", janus, tmp_path, 10)]) as pool:
        desk = Desk(board, pool, notify, lambda: datetime.now(UTC))
        await desk.request("call-1", "T1", "pension", "cmn", elderly=False)
        await desk.request("call-2", "T2", "pension", "cmn", elderly=False)
        teller_1 = await desk.accept("t1", "call-1")
        await desk.accept("t2", "call-2")
        connect = {m["session"]: m for a, m in inbox if m["type"] == "connect"}
        assert set(connect) == {"call-1", "call-2"}
        customer_1, customer_2 = connect["call-1"]["token"], connect["call-2"]["token"]

        pcs = []
        async with JanusClient(janus.url, customer_1) as client, client.session() as session:
            pin_1 = connect["call-1"]["pin"]
            room_1 = await VideoRoom.attach(session)
            pc, _ = await peers.publish(room_1, "call-1", "customer", pin_1)
            pcs.append(pc)
            # The teller of call 1 subscribes as before, once the customer's media is up.
            async with JanusClient(janus.url, teller_1.token) as own, own.session() as mine:

                async def subscribed() -> dict[str, object] | None:
                    room = await VideoRoom.attach(mine)
                    try:
                        return await room.subscribe("call-1", ["customer"], pin=teller_1.pin)
                    except VideoRoomError as err:
                        if err.code != NO_SUCH_FEED:
                            raise
                        return None

                assert (await eventually(subscribed))["type"] == "offer"
            async with JanusClient(janus.url, customer_2) as thief, thief.session() as stolen:
                # The attack of the finding: its own token, its own room's PIN (or none).
                for pin in (None, connect["call-2"]["pin"]):
                    room = await VideoRoom.attach(stolen)
                    with pytest.raises(VideoRoomError) as refused:
                        await room.subscribe("call-1", ["customer"], pin=pin)
                    assert refused.value.code in (MISSING_ELEMENT, UNAUTHORIZED)
                    assert "pin" in str(refused.value)
                # Even holding call 1's PIN (say, a guest who left), the token is not on the
                # room's list: no publishing into it.
                room = await VideoRoom.attach(stolen)
                with pytest.raises(VideoRoomError) as refused:
                    offer = {"type": "offer", "sdp": pc.localDescription.sdp}
                    await room.publish("call-1", "intruder", offer, pin=pin_1)
                assert refused.value.code == UNAUTHORIZED
                assert "not in the allowed list" in str(refused.value)
            for pc in pcs:
                await pc.close()
        await desk.hang_up("call-1", "done")
        await desk.hang_up("call-2", "done")
