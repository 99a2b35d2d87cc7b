"""The Janus client against an in-memory Janus: routing of events, errors, keepalives, auth."""

from __future__ import annotations

import asyncio

import pytest

from cloud.media.errors import JanusError, JanusTimeout, JanusUnauthorized, VideoRoomError
from janus_client.janus import JanusAdmin, JanusClient, JanusEvent, JanusSession
from janus_client.videoroom import RoomSpec, VideoRoom
from tests.teller.fake_janus import FakeJanus

URL = "http://janus.test/janus"
OFFER = {"type": "offer", "sdp": "v=0 offer"}
ANSWER = {"type": "answer", "sdp": "v=0 answer"}


def videoroom_fake(**kw: object) -> FakeJanus:
    fake = FakeJanus(**kw)  # type: ignore[arg-type]
    rooms: set[str] = set()

    def create(body: dict, jsep: dict | None) -> tuple:
        if body["room"] in rooms:
            return ("sync", {"videoroom": "event", "error_code": 427, "error": "Room exists"})
        rooms.add(body["room"])
        return ("sync", {"videoroom": "created", "room": body["room"], "permanent": False})

    def join(body: dict, jsep: dict | None) -> tuple:
        assert jsep == OFFER
        data = {"videoroom": "joined", "room": body["room"], "id": "customer", "publishers": []}
        return ("async", {**data, "private_id": 7}, ANSWER)

    def destroy(body: dict, jsep: dict | None) -> tuple:
        if body["room"] not in rooms:
            return ("sync", {"videoroom": "event", "error_code": 426, "error": "No such room"})
        rooms.discard(body["room"])
        return ("sync", {"videoroom": "destroyed", "room": body["room"]})

    fake.handlers.update(
        {
            "create": create,
            "joinandconfigure": join,
            "destroy": destroy,
            "start": lambda body, jsep: ("async", {"videoroom": "event", "started": "ok"}, None),
        }
    )
    return fake


@pytest.mark.parametrize("event_before_ack", [True, False])
async def test_publish_gets_answer_from_long_poll(event_before_ack: bool) -> None:
    fake = videoroom_fake(event_before_ack=event_before_ack)
    async with JanusClient(URL, "svc", transport=fake.transport()) as janus:
        async with janus.session() as session:
            room = await VideoRoom.attach(session)
            assert await room.create_room(RoomSpec("s1", record=True, rec_dir="/rec"), "k") == "s1"
            create = next(r for r in fake.requests if r.get("body", {}).get("request") == "create")
            assert create["body"]["record"] is True and create["body"]["rec_dir"] == "/rec"
            assert create["body"]["admin_key"] == "k" and create["token"] == "svc"
            # An unsolicited event for the handle lands in its queue, not in the request.
            fake.push(session.id, {"janus": "webrtcup", "sender": room.handle_id})
            joined = await room.publish("s1", "customer", OFFER)
            assert (joined.feed, joined.private_id, joined.answer) == ("customer", 7, ANSWER)
            event = await session.next_event(room.handle_id, wait=2)
            assert event == JanusEvent("webrtcup", room.handle_id, event.data)
            await room.start(ANSWER)
        assert fake.destroyed == [session.id]


async def test_videoroom_errors_carry_the_plugin_code() -> None:
    fake = videoroom_fake()
    async with (
        JanusClient(URL, "svc", transport=fake.transport()) as janus,
        janus.session() as session,
    ):
        room = await VideoRoom.attach(session)
        await room.create_room(RoomSpec("s1"))
        with pytest.raises(VideoRoomError) as info:
            await room.create_room(RoomSpec("s1"))
        assert info.value.code == 427
        await room.destroy_room("s1")
        with pytest.raises(VideoRoomError) as info:
            await room.destroy_room("s1")
        assert info.value.code == 426


async def test_missing_answer_times_out() -> None:
    fake = videoroom_fake()
    fake.handlers["joinandconfigure"] = lambda body, jsep: ("ack-only", {})
    async with (
        JanusClient(URL, "svc", transport=fake.transport()) as janus,
        janus.session() as session,
    ):
        room = await VideoRoom.attach(session)
        with pytest.raises(JanusTimeout):
            await session.message(room.handle_id, {"request": "joinandconfigure"}, wait=0.01)
        with pytest.raises(JanusTimeout):
            await session.next_event(room.handle_id, wait=0.01)


async def test_unknown_token_is_refused_and_admin_adds_it() -> None:
    fake = videoroom_fake()
    async with JanusClient(URL, "customer-token", transport=fake.transport()) as janus:
        with pytest.raises(JanusUnauthorized) as info:
            async with janus.session():
                pass
        assert info.value.code == 403
        async with JanusAdmin("http://janus.test/admin", "admin", transport=fake.transport()) as a:
            await a.add_token("customer-token")
            assert "customer-token" in await a.list_tokens()
            async with janus.session() as session:
                assert session.id > 0
            await a.remove_token("customer-token")
        assert "customer-token" not in fake.tokens
        async with JanusAdmin("http://janus.test/admin", "wrong", transport=fake.transport()) as a:
            with pytest.raises(JanusUnauthorized):
                await a.add_token("x")


async def test_session_loss_fails_waiting_requests() -> None:
    fake = videoroom_fake(event_before_ack=False)
    async with (
        JanusClient(URL, "svc", transport=fake.transport()) as janus,
        janus.session() as session,
    ):
        room = await VideoRoom.attach(session)
        # Janus forgets the session (timeout, restart) while an answer is awaited.
        fake.sessions.pop(session.id).put_nowait({"janus": "_closed"})
        with pytest.raises(JanusError) as info:
            await room.publish("s1", "customer", OFFER)
        assert info.value.code == 458
        with pytest.raises(JanusError):  # later requests fail at once, too
            await room.publish("s1", "customer", OFFER)


async def test_keepalives_are_sent_while_open() -> None:
    fake = videoroom_fake()
    async with JanusClient(URL, "svc", transport=fake.transport()) as janus:
        async with janus.session(keepalive_every=0.02):
            await asyncio.sleep(0.15)
        sent = fake.keepalives
        assert sent >= 3
        await asyncio.sleep(0.05)
        assert fake.keepalives == sent  # stopped with the session


async def test_client_outside_context_and_unreachable_server() -> None:
    with pytest.raises(RuntimeError):
        await JanusClient(URL).info()
    async with JanusClient("http://127.0.0.1:9/janus", request_timeout=1) as janus:
        with pytest.raises(JanusError):
            await janus.info()


async def test_a_watch_cancelled_as_an_event_arrives_stops_and_keeps_the_event() -> None:
    """Python 3.11's ``wait_for`` returned the event instead of the cancellation here, so a
    call's room watch, looping on ``next_event``, never stopped and its teardown hung (the
    weak-link test, twice: Janus sends ``slowlink`` events often on a lossy link)."""
    session = JanusSession(client=None, id=1)  # type: ignore[arg-type]  # its event queue only
    queue: asyncio.Queue[JanusEvent] = session._queues.setdefault(5, asyncio.Queue())
    waiting = asyncio.create_task(session.next_event(5, wait=30))
    await asyncio.sleep(0)
    event = JanusEvent("slowlink", 5, {})
    queue.put_nowait(event)
    waiting.cancel()  # in the same turn as the event
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert queue.get_nowait() is event  # and the event is not lost
