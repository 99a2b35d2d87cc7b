"""The simulator's MQTT 5 codec round-trips and refuses garbage."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleet.sim import mqtt5


def _split(packet: bytes) -> tuple[int, bytes]:
    length, pos = mqtt5.read_varint(packet, 1)
    assert len(packet) - pos == length
    return packet[0], packet[pos:]


def test_publish_round_trips_with_request_response_properties() -> None:
    msg = mqtt5.Publish(
        "cuntong/v1/t/T-1/cmd/ping",
        b'{"n":1}',
        qos=1,
        packet_id=7,
        props={mqtt5.RESPONSE_TOPIC: "cuntong/v1/t/T-1/cmd-reply", mqtt5.CORRELATION_DATA: b"c1"},
    )
    assert mqtt5.Publish.parse(*_split(msg.to_bytes())) == msg


def test_properties_match_paho_encoding() -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "a/b"
    props.CorrelationData = b"\x00\x01"
    props.UserProperty = [("mac", "x")]
    ours = mqtt5.encode_props(
        {
            mqtt5.RESPONSE_TOPIC: "a/b",
            mqtt5.CORRELATION_DATA: b"\x00\x01",
            mqtt5.USER_PROPERTY: [("mac", "x")],
        }
    )
    assert mqtt5.decode_props(props.pack(), 0)[0] == mqtt5.decode_props(ours, 0)[0]


@pytest.mark.parametrize("n", [0, 127, 128, 16_383, 16_384, 268_435_455])
def test_varint_round_trips(n: int) -> None:
    assert mqtt5.read_varint(mqtt5.varint(n), 0) == (n, len(mqtt5.varint(n)))


@pytest.mark.parametrize(
    "first,body",
    [
        (0x36, b"\x00\x01a"),  # QoS 3
        (0x32, b"\x00\x05ab"),  # topic runs past the packet
        (0x30, b"\x00\x01a\x05\x7f"),  # unknown property
        (0x20, b"\x00\x00"),  # not a PUBLISH
    ],
)
def test_garbage_is_refused(first: int, body: bytes) -> None:
    with pytest.raises(ValueError):
        mqtt5.Publish.parse(first, body)
