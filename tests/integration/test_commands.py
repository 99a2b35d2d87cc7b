"""Cloud → terminal commands over MQTT 5 request/response with correlation data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cuntong.servers.mosquitto import Broker
from tests.integration.agents import make_agent, new_id


async def test_ping_and_unknown_command_are_answered(tmp_path: Path, broker: Broker) -> None:
    tid = new_id("CMD")
    agent = make_agent(tmp_path, broker.cfg.port, tid)
    run = asyncio.create_task(agent.run())
    reply_topic = f"cuntong/v1/t/{tid}/cmd-reply"
    try:
        await asyncio.wait_for(agent.connected.wait(), 10)
        async with aiomqtt.Client(
            "127.0.0.1", broker.cfg.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as cloud:
            await cloud.subscribe(reply_topic, qos=1)
            replies = {}
            for name, corr in (("ping", b"req-1"), ("self_destruct", b"req-2")):
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = reply_topic
                props.CorrelationData = corr
                await cloud.publish(
                    f"cuntong/v1/t/{tid}/cmd/{name}", b'{"n": 1}', qos=1, properties=props
                )
            async with asyncio.timeout(10):
                async for message in cloud.messages:
                    corr = message.properties.CorrelationData  # type: ignore[union-attr]
                    replies[corr] = json.loads(message.payload)  # type: ignore[arg-type]
                    if len(replies) == 2:
                        break
        assert replies[b"req-1"]["ok"] is True
        assert replies[b"req-1"]["result"]["echo"] == {"n": 1}
        assert replies[b"req-2"]["ok"] is False
        assert "unknown command" in replies[b"req-2"]["result"]["error"]
    finally:
        agent.stop()
        await run
