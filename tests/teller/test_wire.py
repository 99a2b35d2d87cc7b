"""Terminal session messages: every valid form round-trips, garbage is refused by name."""

from __future__ import annotations

import pytest

from common.wire import call as wire
from tests.steps_rig import agent_verdict

RID = "0123456789abcdef" * 2

VALID = [
    wire.Request(RID, "card_loss", "zh-shaanxi", True, wire.Customer("张三", "61010219900101123X")),
    wire.Request(RID, "pension", "cmn"),
    wire.Cancel("s1", "customer left"),
    wire.HangUp("s1", "customer ended"),
    wire.Liveness("s1", agent_verdict(0.91).masked),
    wire.Rating("s1", 5),
    wire.RingBack("s1"),
]


@pytest.mark.parametrize("message", VALID, ids=lambda m: m.type)
def test_round_trip(message: wire.SessionMessage) -> None:
    assert wire.parse_session(wire.to_bytes(message)) == message


def test_defaults_from_the_contract() -> None:
    assert wire.parse_session(b'{"type":"cancel","session":"s1"}') == wire.Cancel(
        "s1", "customer left"
    )
    request = wire.parse_session(
        b'{"type":"request","request_id":"' + RID.encode() + b'","business":"x","language":"cmn"}'
    )
    assert request == wire.Request(RID, "x", "cmn", False, None)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "JSON object"),
        (b'{"type":"dance"}', "unknown type 'dance'"),
        (b'{"session":"s1"}', "unknown type None"),
        (b'{"type":"request","request_id":"XYZ","business":"a","language":"cmn"}', "32 lowercase"),
        (b'{"type":"request","request_id":"' + RID.encode() + b'","business":"a"}', "'language'"),
        (
            b'{"type":"request","request_id":"' + RID.encode() + b'","business":"a",'
            b'"language":"cmn","elderly":"yes"}',
            "'elderly'",
        ),
        (
            b'{"type":"request","request_id":"' + RID.encode() + b'","business":"a",'
            b'"language":"cmn","customer":{"name":"x","id_number":"123"}}',
            "ID number",
        ),
        (b'{"type":"rating","session":"s1","score":6}', "1-5"),
        (b'{"type":"rating","session":"s1","score":true}', "1-5"),
        (b'{"type":"liveness","session":"s1","verdict":[]}', "'verdict'"),
        (b'{"type":"hang_up","session":""}', "'session'"),
        (b'{"type":"cancel","session":"s1","cause":' + b'"' + b"x" * 300 + b'"}', "'cause'"),
        (b'{"type":"rating","pad":"' + b"x" * 17000 + b'"}', "exceeds"),
        (b'{"type":"ring_back"}', "'session'"),
        (b'{"type":"ring_back","session":""}', "'session'"),
        (b'{"type":"ring_back","session":7}', "'session'"),
        (b'{"type":"ring_back","session":"' + b"s" * 65 + b'"}', "'session'"),
    ],
)
def test_garbage_is_refused(payload: bytes, why: str) -> None:
    with pytest.raises(wire.CallError, match=why) as err:
        wire.parse_session(payload)
    assert isinstance(err.value, ValueError)


def test_a_ring_back_is_checked_when_made() -> None:
    with pytest.raises(wire.CallError, match="'session'"):
        wire.RingBack("")
    assert wire.RingBack("s1").to_bytes() == b'{"type":"ring_back","session":"s1"}'
    assert wire.RingBack.parse(b'{"type":"ring_back","session":"s1"}') == wire.RingBack("s1")
    with pytest.raises(wire.CallError, match="expected type 'ring_back'"):
        wire.RingBack.parse(b'{"type":"rating","session":"s1","score":4}')
