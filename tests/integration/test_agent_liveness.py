"""A liveness check asked of the agent: real models on real frames, only the verdict leaves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cuntong.servers.mosquitto import Broker
from edge.vision.challenge import PROMPTS
from edge.vision.runtime import ModelSet
from tests.integration.agents import make_agent, new_id
from tests.vision.faces import acted

ACTION_OF = {v: k for k, v in PROMPTS.items()}
MODEL_NAMES = {m["name"] for m in json.loads(Path("models/manifest.json").read_text())["models"]}


@pytest.fixture(scope="module")
def cooperative() -> dict[str, list[np.ndarray]]:
    from skimage import data

    return acted(ModelSet.load(), np.ascontiguousarray(data.astronaut()))


class Customer:
    """Stands at the terminal and does what the screen asks."""

    def __init__(self, frames: dict[str, list[np.ndarray]]) -> None:
        self.frames = frames
        self.action = "neutral"
        self.heard: list[str] = []

    async def hear(self, prompt: str) -> None:
        self.heard.append(prompt)
        self.action = ACTION_OF.get(prompt, "neutral")

    async def stream(self):  # type: ignore[no-untyped-def]
        for _ in range(200):
            for frame in self.frames[self.action]:
                await asyncio.sleep(0.01)
                yield frame


async def _ask(port: int, tid: str, args: dict[str, Any]) -> dict[str, Any]:
    reply_topic = f"cuntong/v1/t/{tid}/cmd-reply"
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as cloud:
        await cloud.subscribe(reply_topic, qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = b"lv"
        await cloud.publish(
            f"cuntong/v1/t/{tid}/cmd/liveness_check", json.dumps(args).encode(), 1, properties=props
        )
        async with asyncio.timeout(60):
            async for message in cloud.messages:
                return json.loads(message.payload)  # type: ignore[no-any-return,arg-type]
    raise AssertionError("no reply")


async def test_liveness_check_by_command_sends_only_the_verdict(
    tmp_path: Path, broker: Broker, cooperative: dict[str, list[np.ndarray]]
) -> None:
    tid = new_id("LV")
    agent = make_agent(tmp_path, broker.cfg.port, tid, simulate=False)
    customer = Customer(cooperative)
    agent.liveness.frames = customer.stream
    agent.liveness.prompt = customer.hear
    uplink: list[tuple[str, bytes]] = []
    listening = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.cfg.port) as tap:
            await tap.subscribe(f"cuntong/v1/t/{tid}/#", qos=1)
            listening.set()
            async for message in tap.messages:
                uplink.append((str(message.topic), message.payload))  # type: ignore[arg-type]

    tap = asyncio.create_task(listen())
    await listening.wait()
    run = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 10)
        missing = await _ask(broker.cfg.port, tid, {})
        assert not missing["ok"] and "business_type" in missing["result"]["error"]

        reply = await _ask(broker.cfg.port, tid, {"business_type": "password_reset"})
        assert reply["ok"], reply
        result = reply["result"]
        assert result["decision"] == "pass" and result["score"] >= 70
        assert len(customer.heard) >= 3  # the customer was prompted through the challenge
        assert len(result["models"]) >= 3  # detector, landmarks, passive ensemble, by version
        assert set(result["models"]) <= MODEL_NAMES
        assert len(result["frames_sha256"]) == 64
        await asyncio.sleep(0.5)  # the event drains from the spool
    finally:
        agent.stop()
        await run
        tap.cancel()
    # Everything that left the terminal: the verdict as one small event, and no pixels.
    events = [json.loads(p) for t, p in uplink if t.endswith("/event")]
    (verdict,) = [e for e in events if e["body"]["type"] == "liveness_result"]
    assert verdict["body"]["data"]["score"] == result["score"]
    assert max(len(p) for _, p in uplink) < 4096
    assert not any(b"pixels" in p for _, p in uplink)
