"""Just enough MQTT 5 for simulated terminals: CONNECT, SUBSCRIBE, PUBLISH, PUBACK. Pure.

Every packet round-trips: ``to_bytes()`` and ``parse(first_byte, body)``; ``ValueError`` on
garbage. Properties are kept as a dict of id -> value for the ones a terminal meets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14

PAYLOAD_FORMAT, MESSAGE_EXPIRY, CONTENT_TYPE = 0x01, 0x02, 0x03
RESPONSE_TOPIC, CORRELATION_DATA, SUBSCRIPTION_ID = 0x08, 0x09, 0x0B
SESSION_EXPIRY, TOPIC_ALIAS, USER_PROPERTY = 0x11, 0x23, 0x26
#: Property id -> wire type.
_PROP_TYPES = {
    PAYLOAD_FORMAT: "byte",
    MESSAGE_EXPIRY: "u32",
    CONTENT_TYPE: "str",
    RESPONSE_TOPIC: "str",
    CORRELATION_DATA: "bin",
    SUBSCRIPTION_ID: "varint",
    SESSION_EXPIRY: "u32",
    TOPIC_ALIAS: "u16",
    USER_PROPERTY: "pair",
    0x12: "str",  # assigned client identifier
    0x13: "u16",  # server keep alive
    0x21: "u16",  # receive maximum
    0x22: "u16",  # topic alias maximum
    0x24: "byte",  # maximum QoS
    0x25: "byte",  # retain available
    0x27: "u32",  # maximum packet size
    0x28: "byte",  # wildcard subscription available
    0x29: "byte",  # subscription identifiers available
    0x2A: "byte",  # shared subscription available
    0x1F: "str",  # reason string
}


def varint(n: int) -> bytes:
    if not 0 <= n < 268_435_456:
        raise ValueError(f"variable byte integer out of range: {n}")
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(4):
        if pos + i >= len(buf):
            raise ValueError("truncated variable byte integer")
        byte = buf[pos + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos + i + 1
        shift += 7
    raise ValueError("variable byte integer longer than 4 bytes")


def _str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!H", len(raw)) + raw


def _bin(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def _read_bin(buf: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(buf):
        raise ValueError("truncated length prefix")
    (n,) = struct.unpack_from("!H", buf, pos)
    if pos + 2 + n > len(buf):
        raise ValueError("truncated string or binary data")
    return buf[pos + 2 : pos + 2 + n], pos + 2 + n


def _read_str(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _read_bin(buf, pos)
    try:
        return raw.decode(), pos
    except UnicodeDecodeError as err:
        raise ValueError("invalid UTF-8 string") from err


def encode_props(props: dict[int, Any]) -> bytes:
    out = bytearray()
    for pid, value in props.items():
        kind = _PROP_TYPES.get(pid)
        values = value if kind == "pair" else [value]
        for v in values:
            out += varint(pid)
            if kind == "byte":
                out.append(v)
            elif kind == "u16":
                out += struct.pack("!H", v)
            elif kind == "u32":
                out += struct.pack("!I", v)
            elif kind == "varint":
                out += varint(v)
            elif kind == "str":
                out += _str(v)
            elif kind == "bin":
                out += _bin(v)
            elif kind == "pair":
                out += _str(v[0]) + _str(v[1])
            else:
                raise ValueError(f"unsupported property 0x{pid:02x}")
    return varint(len(out)) + bytes(out)


def decode_props(buf: bytes, pos: int) -> tuple[dict[int, Any], int]:
    length, pos = read_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ValueError("properties run past the packet")
    props: dict[int, Any] = {}
    while pos < end:
        pid, pos = read_varint(buf, pos)
        kind = _PROP_TYPES.get(pid)
        if kind == "byte":
            value: Any = buf[pos]
            pos += 1
        elif kind == "u16":
            (value,) = struct.unpack_from("!H", buf, pos)
            pos += 2
        elif kind == "u32":
            (value,) = struct.unpack_from("!I", buf, pos)
            pos += 4
        elif kind == "varint":
            value, pos = read_varint(buf, pos)
        elif kind == "str":
            value, pos = _read_str(buf, pos)
        elif kind == "bin":
            value, pos = _read_bin(buf, pos)
        elif kind == "pair":
            k, pos = _read_str(buf, pos)
            v, pos = _read_str(buf, pos)
            props.setdefault(pid, []).append((k, v))
            continue
        else:
            raise ValueError(f"unknown property 0x{pid:02x}")
        props[pid] = value
    if pos != end:
        raise ValueError("property length mismatch")
    return props, end


def frame(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


@dataclass(frozen=True, slots=True)
class Connect:
    client_id: str
    keepalive: int = 60
    clean_start: bool = True
    will_topic: str | None = None
    will_payload: bytes = b""
    will_retain: bool = False
    will_qos: int = 0
    props: dict[int, Any] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        flags = 0x02 if self.clean_start else 0
        will = b""
        if self.will_topic is not None:
            flags |= 0x04 | (self.will_qos << 3) | (0x20 if self.will_retain else 0)
            will = encode_props({}) + _str(self.will_topic) + _bin(self.will_payload)
        head = _str("MQTT") + bytes([5, flags]) + struct.pack("!H", self.keepalive)
        return frame(CONNECT << 4, head + encode_props(self.props) + _str(self.client_id) + will)


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    packet_id: int = 0
    props: dict[int, Any] = field(default_factory=dict)
    dup: bool = False

    def to_bytes(self) -> bytes:
        first = (PUBLISH << 4) | (self.dup << 3) | (self.qos << 1) | int(self.retain)
        body = _str(self.topic)
        if self.qos:
            body += struct.pack("!H", self.packet_id)
        return frame(first, body + encode_props(self.props) + self.payload)

    @classmethod
    def parse(cls, first: int, body: bytes) -> Publish:
        if first >> 4 != PUBLISH:
            raise ValueError("not a PUBLISH packet")
        qos = (first >> 1) & 3
        if qos == 3:
            raise ValueError("QoS 3 does not exist")
        topic, pos = _read_str(body, 0)
        packet_id = 0
        if qos:
            if pos + 2 > len(body):
                raise ValueError("truncated packet id")
            (packet_id,) = struct.unpack_from("!H", body, pos)
            pos += 2
        props, pos = decode_props(body, pos)
        return cls(topic, body[pos:], qos, bool(first & 1), packet_id, props, bool(first & 8))


def subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    body = struct.pack("!H", packet_id) + encode_props({})
    for f, qos in filters:
        body += _str(f) + bytes([qos])
    return frame((SUBSCRIBE << 4) | 0x02, body)


def puback(packet_id: int) -> bytes:
    return frame(PUBACK << 4, struct.pack("!H", packet_id))


def connack_reason(body: bytes) -> int:
    if len(body) < 2:
        raise ValueError("truncated CONNACK")
    return body[1]


PINGREQ_BYTES = bytes([PINGREQ << 4, 0])
DISCONNECT_BYTES = bytes([DISCONNECT << 4, 0])
