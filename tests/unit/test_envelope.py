import json

import pytest

from common import envelope
from common.errors import PayloadTooLarge, WireError

TELEMETRY = envelope.Telemetry(
    "SX-00001",
    7,
    1_795_611_623_000,
    {"cpu_pct": 12.5, "temp_c": 31.0},
    {"id_reader": "ok", "pin_pad": "fault"},
    {"agent": "0.1.0"},
    {"pin_pad": 3},
)


def test_telemetry_round_trips() -> None:
    assert envelope.parse_telemetry(TELEMETRY.to_bytes(), "SX-00001") == TELEMETRY


def test_event_and_status_round_trip() -> None:
    event = envelope.Event("T1", 3, 5, "idcard_read", {"name": "张三"})
    assert envelope.parse_event(event.to_bytes(), "T1") == event
    status = envelope.Status("T1", False, 9, {"agent": "1"}, {"province": "陕西省"}, "ZN-E100")
    assert envelope.parse_status(status.to_bytes(), "T1") == status


def _mutated(**changes: object) -> bytes:
    obj = json.loads(TELEMETRY.to_bytes())
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = obj
        for key in parents:
            target = target[key]
        target[leaf] = value
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe garbage", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (_mutated(v=2), "unsupported envelope version"),
        (_mutated(kind="event"), "expected kind"),
        (_mutated(seq=0), "'seq'"),
        (_mutated(seq="7"), "'seq'"),
        (_mutated(ts=True), "'ts'"),
        (_mutated(body__metrics__cpu_pct=101), "outside"),
        (_mutated(body__metrics__cpu_pct="high"), "must be a number"),
        (_mutated(body__metrics__warp=1), "unknown metric"),
        (_mutated(body__peripherals__pin_pad="on fire"), "unknown peripheral states"),
        (_mutated(body__versions__agent=1), "strings to strings"),
        (_mutated(body__peripheral_faults__pin_pad=-1), "integers >= 0"),
        (_mutated(body__peripheral_faults__camera=1), "reported peripherals"),
    ],
)
def test_bad_telemetry_is_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        envelope.parse_telemetry(payload, "SX-00001")


def test_a_body_claiming_another_terminal_is_refused() -> None:
    with pytest.raises(WireError, match="does not match topic terminal"):
        envelope.parse_telemetry(TELEMETRY.to_bytes(), "SX-00002")


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadTooLarge):
        envelope.parse_telemetry(b"{" + b" " * 20_000 + b"}", "SX-00001")
    assert isinstance(PayloadTooLarge("x"), ValueError)
