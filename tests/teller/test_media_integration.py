"""A whole recorded call through real Janus: aiortc customer and teller, then the archive file.

Customer and teller each publish a tone and moving frames into a room the backend created
with recording on, and each subscribes to the other; after hang-up the recording pipeline
must produce one Matroska file with four streams (both directions, audio and video). Tokens
are real Janus stored tokens: one never added, and one removed, are refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path

import pytest

from cloud.media.archive import Archiver
from cloud.media.errors import JanusUnauthorized, RecordingError, VideoRoomError
from cloud.media.nodes import Node
from cloud.media.recording import RecordingResult
from cuntong.servers.janus import Janus
from janus_client.janus import JanusAdmin, JanusClient
from janus_client.videoroom import RoomSpec, VideoRoom
from tests.teller.peers import (
    CALL_TOKENS,
    HEIGHT,
    RECORDED_STREAMS,
    WIDTH,
    call_sessions,
    publish,
    subscribe,
)

CALL_SECONDS = 3.0


async def test_recorded_call_through_janus(janus: Janus, tmp_path: Path) -> None:
    rec_dir, out_dir = tmp_path / "rec", tmp_path / "archive"
    rec_dir.mkdir()
    room_id = "sess-0001"
    async with JanusAdmin(janus.admin_url, janus.cfg.admin_secret) as admin:
        for token in CALL_TOKENS:
            await admin.add_token(token)
        async with call_sessions(janus.url) as (control_session, cust_session, tel_session):
            control = await VideoRoom.attach(control_session)
            spec = RoomSpec(room_id, record=True, rec_dir=str(rec_dir))
            assert await control.create_room(spec, janus.cfg.room_admin_key) == room_id
            # Without the room admin key a token holder cannot make rooms.
            rogue = await VideoRoom.attach(cust_session)
            for key, code in ((None, 429), ("guess", 433)):  # missing, wrong
                with pytest.raises(VideoRoomError) as refused:
                    await rogue.create_room(RoomSpec("rogue"), key)
                assert refused.value.code == code

            cust_pub, tel_pub = (
                await VideoRoom.attach(cust_session),
                await VideoRoom.attach(tel_session),
            )
            cust_sub, tel_sub = (
                await VideoRoom.attach(cust_session),
                await VideoRoom.attach(tel_session),
            )
            t0 = time.monotonic()
            cust_pc, cust_join = await publish(cust_pub, room_id, "customer")
            tel_pc, tel_join = await publish(tel_pub, room_id, "teller")
            assert (cust_join.feed, tel_join.feed) == ("customer", "teller")
            up = await cust_session.next_event(cust_pub.handle_id, wait=15)
            while up.kind != "webrtcup":
                up = await cust_session.next_event(cust_pub.handle_id, wait=15)

            teller_view, teller_got = await subscribe(tel_sub, room_id, ["customer"])
            customer_view, customer_got = await subscribe(cust_sub, room_id, ["teller"])
            first = await asyncio.wait_for(teller_got.first_video, 15)
            await asyncio.wait_for(customer_got.first_video, 15)
            setup = first - t0
            await asyncio.sleep(CALL_SECONDS)
            names = {p["id"] for p in await control.participants(room_id)}
            assert names == {"customer", "teller"}

            for got in (teller_got, customer_got):
                assert got.size == (WIDTH, HEIGHT)
                assert got.frames["video"] >= 20 * CALL_SECONDS * 0.5
                assert got.frames["audio"] >= 50 * CALL_SECONDS * 0.5  # 20 ms Opus frames
                assert got.loudest > 3000  # the tone, not silence
            # Hang up: peers close, the room goes; Janus closes the .mjr files.
            for got in (teller_got, customer_got):
                await got.stop()
            for pc in (teller_view, customer_view, cust_pc, tel_pc):
                await pc.close()
            await control.destroy_room(room_id)
            assert not await control.exists(room_id)

        # A token never added is refused; a removed one stops working.
        async with JanusClient(janus.url, "stranger") as stranger:
            with pytest.raises(JanusUnauthorized):
                async with stranger.session():
                    pass
        await admin.remove_token("customer-tok")
        async with JanusClient(janus.url, "customer-tok") as former:
            with pytest.raises(JanusUnauthorized):
                async with former.session():
                    pass

    # Archive the way the desk's hook does: queue the room, a worker runs the pipeline.
    done: dict[str, RecordingResult] = {}

    async def on_done(room: str, result: RecordingResult) -> None:
        done[room] = result

    async def on_error(room: str, err: RecordingError) -> None:
        raise AssertionError(f"{room}: {err}")

    archiver = Archiver(lambda node: rec_dir, out_dir, on_done, on_error)
    worker = asyncio.create_task(archiver.run())
    await archiver.after_call(room_id, Node("janus-1", janus.url, janus.admin_url, 10))
    await asyncio.wait_for(archiver.queue.join(), 30)
    worker.cancel()
    result = done[room_id]
    assert result.path == out_dir / f"{room_id}.mkv"
    assert [(s.title, s.kind, s.codec) for s in result.streams] == RECORDED_STREAMS
    assert all(s.seconds >= CALL_SECONDS - 0.5 for s in result.streams)
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert result.size == result.path.stat().st_size
    assert list(out_dir.iterdir()) == [result.path]  # intermediate files cleaned up
    assert setup < 5.0
