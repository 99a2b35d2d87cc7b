"""Commands and event MACs end to end: enrolment hands out the keys, the broker carries them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common.suite import Suite
from common.topics import Channel, topic
from common.wire.commands import (
    Command,
    ReplayCache,
    event_tag,
    event_tag_valid,
    sign_command,
    verify_command,
)
from provisioning import device
from provisioning.errors import CommandRefused
from provisioning.keys import load_command_public_key
from tests.provisioning.conftest import Cloud, MakeTerminal, enrol_request, mqtt_client

pytestmark = pytest.mark.servers


async def test_signed_commands_and_maced_events_over_the_broker(
    cloud_with_broker: Cloud, tmp_path: Path, make_terminal: MakeTerminal
) -> None:
    cloud = cloud_with_broker
    assert cloud.broker is not None
    prov, now = cloud.provisioner, cloud.clock.now
    _, token = await prov.create_claim(now, max_uses=1, valid_for=dt.timedelta(days=1))
    identity = device.Identity(tmp_path / "T-CMD")
    answer = await device.enrol(cloud.http, enrol_request(token, "T-CMD"), identity)
    command_key = load_command_public_key(answer.command_key_pem.encode())
    mac_key = bytes.fromhex(answer.event_mac_key)
    assert mac_key == prov.keys.event_mac_key(Suite(answer.suite), "T-CMD")

    cloud_svc = make_terminal("cloud", service=True)
    cmd_topic = topic("T-CMD", Channel.CMD, "reboot")
    good = sign_command(
        prov.keys.command_key,
        Command("cmd-1", "T-CMD", "reboot", {"delay_s": 5}, now, now + dt.timedelta(minutes=5)),
    )
    tampered = json.loads(good)
    tampered["args"]["delay_s"] = 0
    event = b'{"kind":"event","tid":"T-CMD","type":"withdrawal","data":{"amount":100}}'

    info = identity.info()
    async with (
        mqtt_client(info["broker"]["port"], identity.ssl_context()) as terminal,
        mqtt_client(cloud.broker.port, cloud_svc.ctx) as svc,
    ):
        await terminal.subscribe("cuntong/v1/t/T-CMD/cmd/#", qos=1)
        await svc.subscribe(topic("T-CMD", Channel.EVENT), qos=1)
        for payload in (good, json.dumps(tampered).encode(), good):  # the third is a replay
            await svc.publish(cmd_topic, payload, qos=1)

        cache, outcomes = ReplayCache(), []
        async with asyncio.timeout(5):
            async for message in terminal.messages:
                assert isinstance(message.payload, bytes)
                try:
                    name = str(message.topic).rsplit("/", 1)[-1]
                    verify_command(command_key, message.payload, "T-CMD", now, cache, name)
                    outcomes.append("accepted")
                except CommandRefused as err:
                    outcomes.append(err.reason)
                if len(outcomes) == 3:
                    break
        assert outcomes == ["accepted", "bad_signature", "replayed"]

        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("mac", event_tag(Suite(answer.suite), mac_key, event))]
        await terminal.publish(topic("T-CMD", Channel.EVENT), event, qos=1, properties=props)
        async with asyncio.timeout(5):
            message = await anext(aiter(svc.messages))
        assert isinstance(message.payload, bytes) and message.properties is not None
        tag = dict(message.properties.UserProperty)["mac"]
        assert event_tag_valid(
            prov.keys.event_mac_key(Suite.STANDARD, "T-CMD"), message.payload, tag
        )
        assert not event_tag_valid(
            prov.keys.event_mac_key(Suite.STANDARD, "T-OTHER"), message.payload, tag
        )
