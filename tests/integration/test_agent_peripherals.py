"""The agent drives real peripheral adapters: health in telemetry, self-test by command."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cuntong.servers.mosquitto import Broker
from firmware_adapters.idcard.simulator import IdCardSimulator, sample_card
from firmware_adapters.pinpad.simulator import PinPadSimulator
from firmware_adapters.pty_server import PtyServer
from tests.integration.agents import make_agent, new_id


async def _selftest(port: int, tid: str, corr: bytes) -> dict[str, Any]:
    reply_topic = f"cuntong/v1/t/{tid}/cmd-reply"
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as cloud:
        await cloud.subscribe(reply_topic, qos=1)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = corr
        await cloud.publish(
            f"cuntong/v1/t/{tid}/cmd/peripheral_selftest", b"{}", 1, properties=props
        )
        async with asyncio.timeout(15):
            async for message in cloud.messages:
                if message.properties.CorrelationData == corr:  # type: ignore[union-attr]
                    return json.loads(message.payload)  # type: ignore[no-any-return,arg-type]
    raise AssertionError("no reply")


async def test_peripheral_health_and_selftest_through_the_agent(
    tmp_path: Path, broker: Broker
) -> None:
    idcard = PtyServer(IdCardSimulator([sample_card(0)]), tmp_path / "idcard.tty")
    pinpad = PtyServer(PinPadSimulator("123456#", 0.01), tmp_path / "pinpad.tty", 9600)
    config = tmp_path / "peripherals.json"
    config.write_text(
        json.dumps(
            {
                "id_reader": {"kind": "idcard", "port": str(tmp_path / "idcard.tty")},
                "pin_pad": {
                    "kind": "pinpad",
                    "port": str(tmp_path / "pinpad.tty"),
                    "baudrate": 9600,
                },
                "camera": {"kind": "camera", "device": "synthetic"},
            }
        )
    )
    tid = new_id("PER")
    with idcard, pinpad:
        agent = make_agent(tmp_path, broker.cfg.port, tid, peripherals_file=config)
        run = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 10)
            reply = await _selftest(broker.cfg.port, tid, b"first")
            assert reply["ok"] and reply["result"]["passed"], reply
            kinds = {r["name"]: r["kind"] for r in reply["result"]["results"]}
            assert kinds == {"id_reader": "idcard", "pin_pad": "pinpad", "camera": "camera"}
            assert agent.peripherals.states() == dict.fromkeys(kinds, "ok")

            idcard.stop()  # the reader's cable is pulled
            reply = await _selftest(broker.cfg.port, tid, b"second")
            assert not reply["result"]["passed"]
            failed = [r["name"] for r in reply["result"]["results"] if not r["passed"]]
            assert failed == ["id_reader"]
            # What the next telemetry sample reports:
            states = agent.peripherals.states()
            assert states["id_reader"] != "ok" and states["pin_pad"] == "ok"
            faults = agent.peripherals.fault_counts()
            assert faults["id_reader"] >= 1 and faults["pin_pad"] == 0
        finally:
            agent.stop()
            await run
