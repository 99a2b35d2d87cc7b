"""A teller whose browser crashed mid-call, through the desk on a real Janus with aiortc
participants: the crashed page's publisher is still in the room (Janus keeps it until ICE
or its session times out) and holds the room's second publisher seat. The rejoin kicks it
and revokes its token; the new page publishes on a fresh feed, the terminal follows the
``connect`` the desk sends, and the archive holds the customer and both teller segments."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cloud.media.errors import JanusUnauthorized
from cloud.sessions.grants import Message
from cloud.sessions.routing import Board, TellerState
from cloud.sessions.skills import Skills
from cuntong.servers.janus import Janus
from janus_client.videoroom import VideoRoom
from tests.teller.recorded_desk import recorded_desk
from tests.teller.test_desk_call import TALK, Participant

ROOM = "s-crash"


async def test_a_crashed_pages_publisher_is_kicked_and_the_call_goes_on(
    janus: Janus, tmp_path: Path
) -> None:
    board = Board()
    board.add_teller("t1", Skills.of({"cash_deposit": 5}, {"cmn"}), datetime.now(UTC).timestamp())
    async with recorded_desk(janus, tmp_path, board) as rd:
        desk = rd.desk

        def connects() -> list[Message]:
            return [m for a, m in rd.inbox if a == "terminal:T0088" and m["type"] == "connect"]

        await desk.teller_state("t1", TellerState.AVAILABLE)
        await desk.request(ROOM, "T0088", "cash_deposit", "cmn", elderly=False)
        first = (await desk.accept("t1", ROOM)).message()
        customer = await Participant.join(connects()[-1])
        crashed = await Participant.join(first)
        await crashed.watch(ROOM, "customer")
        await customer.watch(ROOM, "teller-t1")
        await asyncio.sleep(TALK)

        # The browser crashed: its peer connection and Janus session are still up.
        lister = await VideoRoom.attach(customer.session)

        async def publishers() -> list[str]:
            return sorted(
                str(p["id"]) for p in await lister.participants(ROOM) if p.get("publisher")
            )

        assert await publishers() == ["customer", "teller-t1"]
        again: dict[str, Any] = (await desk.rejoin("t1", ROOM)).message()
        assert again["feed"] == "teller-t1~1" and again["token"] != first["token"]
        assert await publishers() == ["customer"]  # kicked
        with pytest.raises(JanusUnauthorized):  # and its token is dead
            await VideoRoom.attach(crashed.session)
        follow = connects()[-1]
        assert follow["peer_feed"] == "teller-t1~1" and follow["token"] == connects()[0]["token"]

        # The reopened page publishes on the fresh feed; the terminal follows it.
        reopened = await Participant.join(again)
        await reopened.watch(ROOM, "customer")
        seen = await customer.watch(ROOM, follow["peer_feed"])
        await asyncio.sleep(TALK)
        assert seen.frames["video"] > 10 and seen.loudest > 3000

        await desk.hang_up(ROOM, "customer pressed end")
        for side in (customer, reopened, crashed):
            await side.leave()
        await rd.archive()

    result = rd.archived[ROOM]
    assert [s.title for s in result.streams] == [
        "customer audio", "customer video", "teller-t1 audio", "teller-t1 video",
        "teller-t1~1 audio", "teller-t1~1 video",
    ]  # fmt: skip
    assert all(s.seconds >= TALK - 0.3 for s in result.streams)
    assert result.streams[0].seconds >= 2 * TALK  # the customer spans both segments
