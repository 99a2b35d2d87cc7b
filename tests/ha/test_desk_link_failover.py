"""The desk's MQTT link with broker failover (issue 17): it subscribes on every broker of
the ordered list and answers each terminal through the broker that terminal is on, so a
terminal that failed over to the second broker still reaches the desk.

Real processes: two Mosquittos. The terminal side speaks with the terminal's own codecs
(``common.envelope.Status``, ``common.wire.call``); no desk runs here (no Janus), so the
desk's answer is its refusal "the desk is not running" — which must come back on the
terminal's broker.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from cloud.sessions.bridge import DeskLink
from common import envelope, procs, topics
from common.settings import CloudSettings, load
from common.wire import call as wire
from cuntong.servers.mosquitto import Broker, BrokerConfig
from tests.helpers import eventually


@pytest.fixture
def two_brokers(tmp_path: Path) -> Iterator[list[Broker]]:
    brokers = [
        Broker(BrokerConfig(port=procs.free_port()), tmp_path / f"mosquitto-{i}").start()
        for i in range(2)
    ]
    try:
        yield brokers
    finally:
        for b in brokers:
            b.stop()


async def _ask_desk(broker: Broker, tid: str) -> wire.DeskMessage:
    """As a terminal on ``broker``: say online (retained), ask for a teller, await the desk."""
    async with aiomqtt.Client(
        "127.0.0.1", broker.cfg.port, identifier=tid, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.subscribe(topics.topic(tid, topics.Channel.DESK), qos=1)
        status = envelope.Status(tid, True, int(time.time() * 1000), {}, {}, "sim")
        await client.publish(
            topics.topic(tid, topics.Channel.STATUS), status.to_bytes(), qos=1, retain=True
        )
        request = wire.Request(uuid.uuid4().hex, "balance_inquiry")
        await client.publish(
            topics.topic(tid, topics.Channel.SESSION), wire.to_bytes(request), qos=1
        )
        async with asyncio.timeout(20):
            async for message in client.messages:
                answer = wire.parse_desk(bytes(message.payload))  # type: ignore[arg-type]
                assert isinstance(answer, wire.Refused)
                assert answer.request_id == request.request_id
                return answer
    raise AssertionError("no answer")


async def test_desk_link_hears_and_answers_terminals_on_every_broker(
    two_brokers: list[Broker],
) -> None:
    first, second = two_brokers
    settings = load(
        CloudSettings,
        brokers=[f"127.0.0.1:{first.cfg.port}", f"127.0.0.1:{second.cfg.port}"],
    )
    link = DeskLink(settings)
    run = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.ready.wait(), 15)
        await eventually(lambda: asyncio.sleep(0, len(link._clients) == 2))  # both links up
        # A terminal that failed over to the second broker, and one still on the first.
        on_second, on_first = f"T-{uuid.uuid4().hex[:8]}", f"T-{uuid.uuid4().hex[:8]}"
        answers = await asyncio.gather(_ask_desk(second, on_second), _ask_desk(first, on_first))
        assert all("desk is not running" in a.reason for a in answers)
        assert link.presence.where(on_second) == 1
        # The first broker dies: the link stays up on the second and still answers there.
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait()
        first.proc = None
        again = await _ask_desk(second, f"T-{uuid.uuid4().hex[:8]}")
        assert "desk is not running" in again.reason
        assert link.ready.is_set()
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
