"""The simulated customer's visits, through the real client (its room in memory)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import orjson

from edge.teller.call import Phase
from edge.teller.client import TellerClient
from edge.teller.customer import SimulatedCustomer
from edge.teller.paperwork import Paperwork
from edge.teller.visits import visit
from tests.terminal.fakes import FakeRoom


def _client(published: list[dict[str, Any]]) -> TellerClient:
    async def publish(payload: bytes) -> None:
        published.append(orjson.loads(payload))

    async def no_capture(kind: str) -> None:
        return None

    return TellerClient(
        publish,
        lambda grant, on_text, on_event: FakeRoom(grant, on_text, on_event),
        lambda send: Paperwork(send, no_capture, simulate=True),
        lambda: dt.datetime.now(dt.UTC),
    )


async def test_a_customer_who_waits_too_long_leaves() -> None:
    published: list[dict[str, Any]] = []
    client = _client(published)
    customer = SimulatedCustomer(1, 60, patience=(0.3, 0.3))
    going = asyncio.create_task(visit(client, customer))
    await asyncio.sleep(0.1)
    rid = published[0]["request_id"]
    await client.on_desk(
        orjson.dumps({"type": "queued", "request_id": rid, "session": "s1", "position": 4})
    )
    await going
    assert [m["type"] for m in published] == ["request", "cancel"]
    assert published[1] == {"type": "cancel", "session": "s1", "cause": "customer left"}
    assert client.call.phase is Phase.IDLE


async def test_a_customer_talks_then_hangs_up_and_rates() -> None:
    published: list[dict[str, Any]] = []
    client = _client(published)
    customer = SimulatedCustomer(2, 60, talk=(0.3, 0.3), read_s=0.05)
    going = asyncio.create_task(visit(client, customer))
    await asyncio.sleep(0.1)
    rid = published[0]["request_id"]
    grant = {
        "type": "connect",
        "session": "s2",
        "role": "customer",
        "janus_url": "http://127.0.0.1:1/janus",
        "token": "t",
        "room": "s2",
        "feed": "customer",
        "peer_feed": "teller-1",
        "ice_servers": [],
    }
    await client.on_desk(orjson.dumps({"type": "queued", "request_id": rid, "session": "s2"}))
    await client.on_desk(orjson.dumps(grant))
    await asyncio.wait_for(going, 5)
    kinds = [m["type"] for m in published]
    assert kinds == ["request", "hang_up", "rating"]
    assert 1 <= published[2]["score"] <= 5 and client.call.phase is Phase.IDLE


async def test_a_transfer_follows_the_next_teller_in_the_same_room() -> None:
    published: list[dict[str, Any]] = []
    client = _client(published)
    await client.ask("card_loss")
    rid = published[0]["request_id"]
    grant = {
        "type": "connect",
        "session": "s3",
        "role": "customer",
        "janus_url": "http://127.0.0.1:1/janus",
        "token": "t",
        "room": "s3",
        "feed": "customer",
        "peer_feed": "teller-1",
        "ice_servers": [],
    }
    await client.on_desk(orjson.dumps({"type": "queued", "request_id": rid, "session": "s3"}))
    await client.on_desk(orjson.dumps(grant))
    room = client.peer
    assert isinstance(room, FakeRoom)
    await client.on_desk(orjson.dumps({**grant, "peer_feed": "teller-2"}))
    await asyncio.sleep(0.05)
    assert client.peer is room and room.followed == ["teller-2"]  # same seat, next teller
    assert client.call.phase is Phase.IN_CALL
