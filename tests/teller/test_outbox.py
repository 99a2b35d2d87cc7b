"""The outbox: tellers' queues, the terminal sink, and a reader that stalls."""

from __future__ import annotations

import pytest

from cloud.sessions.grants import Message
from cloud.sessions.outbox import Outbox


async def test_routes_by_address_and_drops_oldest_for_stalled_readers() -> None:
    sent: list[tuple[str, Message]] = []

    async def sink(terminal_id: str, message: Message) -> None:
        sent.append((terminal_id, message))

    outbox = Outbox(sink, queue_size=2)
    await outbox.notify("teller:t1", {"n": 0})  # nobody listening: dropped
    with outbox.subscribe("t1") as first, outbox.subscribe("t1") as second:
        assert outbox.connected("t1")
        for n in (1, 2, 3):
            await outbox.notify("teller:t1", {"n": n})
        await outbox.notify("teller:t2", {"n": 99})
        await outbox.notify("terminal:T7", {"type": "queued"})
        for queue in (first, second):
            assert [queue.get_nowait()["n"] for _ in range(queue.qsize())] == [2, 3]
    assert not outbox.connected("t1")
    assert sent == [("T7", {"type": "queued"})]
    with pytest.raises(ValueError):
        await outbox.notify("fax:123", {})


async def test_held_messages_wait_for_the_tellers_next_connection() -> None:
    outbox = Outbox(queue_size=2)
    for n in (1, 2, 3):
        await outbox.hold("t1", {"n": n})  # nobody connected: kept, the latest two
    with outbox.subscribe("t1") as queue:
        assert [queue.get_nowait()["n"] for _ in range(queue.qsize())] == [2, 3]
        await outbox.hold("t1", {"n": 4})  # connected: delivered at once
        assert queue.get_nowait() == {"n": 4}
    with outbox.subscribe("t1") as queue:
        assert queue.empty()  # delivered once, not on every connection
