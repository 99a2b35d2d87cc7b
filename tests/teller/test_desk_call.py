"""End to end through the desk: a real Janus, aiortc participants joining with the grants the
desk hands out, a transfer to a second teller, and the archived recording of all three.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection

from cloud.sessions.routing import Board, TellerState
from cloud.sessions.skills import Skills
from cloud.sessions.state import Event
from common.wire.call import absolute_janus_url
from cuntong.servers.janus import Janus
from janus_client.janus import JanusClient, JanusSession
from janus_client.videoroom import VideoRoom
from tests.teller.peers import Received, publish, subscribe
from tests.teller.recorded_desk import recorded_desk

TALK = 1.5  # seconds of conversation per leg


@dataclass
class Participant:
    """One side in the room, joined with nothing but its grant message."""

    stack: contextlib.AsyncExitStack
    session: JanusSession
    pcs: list[RTCPeerConnection]
    got: list[Received]
    pin: str  # the room's join PIN, from the grant

    @classmethod
    async def join(cls, grant: dict[str, Any], cloud_url: str | None = None) -> Participant:
        """``cloud_url``: where a grant's gate path lies (a secured cloud hands one out)."""
        stack = contextlib.AsyncExitStack()
        url = absolute_janus_url(grant["janus_url"], cloud_url)
        client = await stack.enter_async_context(JanusClient(url, grant["token"]))
        session = await stack.enter_async_context(client.session())
        handle = await VideoRoom.attach(session)
        pc, _ = await publish(handle, grant["room"], grant["feed"], grant["pin"])
        # Others can subscribe once Janus has the media flowing (before that: 428 no such feed).
        while (await session.next_event(handle.handle_id, wait=15)).kind != "webrtcup":
            pass
        return cls(stack, session, [pc], [], grant["pin"])

    async def watch(self, room: str, feed: str) -> Received:
        pc, got = await subscribe(await VideoRoom.attach(self.session), room, [feed], pin=self.pin)
        self.pcs.append(pc)
        self.got.append(got)
        await asyncio.wait_for(got.first_video, 15)
        return got

    async def leave(self) -> None:
        for got in self.got:
            await got.stop()
        for pc in self.pcs:
            await pc.close()
        await self.stack.aclose()


async def test_transferred_call_end_to_end(janus: Janus, tmp_path: Path) -> None:
    records: list[Event] = []

    async def persist(record: Any, facts: Any) -> None:
        records.append(record.event)

    now = datetime.now(UTC).timestamp()
    board = Board()
    board.add_teller("t1", Skills.of({"cash_deposit": 5}, {"cmn"}), now)
    board.add_teller("loans", Skills.of({"agri_loan": 5}, {"cmn"}), now)
    async with recorded_desk(janus, tmp_path, board, persist=persist) as rd:
        desk, last = rd.desk, rd.last
        await desk.teller_state("t1", TellerState.AVAILABLE)
        await desk.request("s-77", "T0077", "cash_deposit", "cmn", elderly=True)
        assert last("teller:t1", "offer")["session"] == "s-77"

        # First leg: the customer and teller t1.
        first_grant = (await desk.accept("t1", "s-77")).message()
        customer = await Participant.join(last("terminal:T0077", "connect"))
        teller = await Participant.join(first_grant)
        await teller.watch("s-77", "customer")
        seen = await customer.watch("s-77", last("terminal:T0077", "connect")["peer_feed"])
        await asyncio.sleep(TALK)
        assert seen.loudest > 3000 and seen.frames["video"] > 10

        # Transfer to the loans desk; t1 leaves, the customer stays in the room.
        await desk.transfer("t1", "s-77", "agri_loan", "cmn", "asks about a farm loan")
        await teller.leave()
        await desk.teller_state("loans", TellerState.AVAILABLE)
        assert last("teller:loans", "offer")["business"] == "agri_loan"
        second_grant = (await desk.accept("loans", "s-77")).message()
        reconnect = last("terminal:T0077", "connect")
        assert reconnect["peer_feed"] == "teller-loans"
        loans = await Participant.join(second_grant)
        await loans.watch("s-77", "customer")
        await customer.watch("s-77", reconnect["peer_feed"])
        await asyncio.sleep(TALK)

        # Hang-up: the desk closes the room; the archiver builds the file.
        await desk.hang_up("s-77", "customer pressed end")
        for side in (customer, loans):
            await side.leave()
        await rd.archive()
        await desk.finish_wrap_up("loans")

    assert records == [
        Event.REQUEST, Event.ENQUEUE, Event.OFFER, Event.ACCEPT, Event.TRANSFER,
        Event.ENQUEUE, Event.OFFER, Event.ACCEPT, Event.HANG_UP, Event.CLOSE,
    ]  # fmt: skip
    result = rd.archived["s-77"]
    assert [s.title for s in result.streams] == [
        "customer audio", "customer video", "teller-loans audio", "teller-loans video",
        "teller-t1 audio", "teller-t1 video",
    ]  # fmt: skip
    customer_secs = result.streams[0].seconds
    assert all(s.seconds >= TALK - 0.3 for s in result.streams)
    assert customer_secs >= 2 * TALK  # the customer was there for both legs
