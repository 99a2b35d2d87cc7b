import base64
import hashlib
from collections.abc import Sequence

import pytest

from cloud.ingest.classify import (
    MAX_KEPT_BYTES,
    SEQ_PER_MS,
    IngestStats,
    Seen,
    TelemetryDeduper,
    Window,
    classify,
    kept_payload,
)
from cloud.ingest.poison import write_isolating
from cloud.tsdb import line_for, point_for
from common import envelope
from common.errors import PayloadTooLarge, WireError


def test_classify_by_topic() -> None:
    t = envelope.Telemetry("T1", 1, 2, {"cpu_pct": 1.0}, {}, {})
    assert classify("cuntong/v1/t/T1/telemetry", t.to_bytes(), 16384) == t
    e = envelope.Event("T1", 2, 3, "idcard_read", {})
    assert classify("cuntong/v1/t/T1/event", e.to_bytes(), 16384) == e


def test_telemetry_on_the_event_topic_is_refused() -> None:
    t = envelope.Telemetry("T1", 1, 2, {}, {}, {})
    with pytest.raises(WireError, match="expected kind"):
        classify("cuntong/v1/t/T1/event", t.to_bytes(), 16384)
    with pytest.raises(WireError, match="does not consume"):
        classify("cuntong/v1/t/T1/cmd/ping", b"{}", 16384)
    with pytest.raises(WireError):
        classify("elsewhere/T1", b"{}", 16384)


NOW = 1_800_000_000_000


def test_deduper_drops_repeats_and_forgets_oldest_terminals() -> None:
    d = TelemetryDeduper(capacity=2)
    assert d.is_new("A", 5, NOW)
    assert not d.is_new("A", 5, NOW)
    assert not d.is_new("A", 4, NOW)
    assert d.is_new("A", 6, NOW)
    assert d.is_new("B", 1, NOW)
    assert d.is_new("C", 1, NOW)  # evicts A, the least recently heard
    assert d.is_new("A", 3, NOW)
    d.seed("D", 10)
    assert not d.is_new("D", 10, NOW)


def test_stats_count_reject_kinds() -> None:
    stats = IngestStats()
    stats.reject(WireError("x"))
    stats.reject(PayloadTooLarge("y"))
    assert stats.as_dict()["rejected"] == {"malformed": 1, "oversized": 1}


def test_lag_percentiles_over_recent_points() -> None:
    stats = IngestStats()
    assert stats.as_dict()["lag_ms"] == {}
    stats.landed([1000 - i for i in range(100)], now_s=1.0)  # lags 0..99 ms
    assert stats.points_written == 100
    assert stats.lag_percentiles() == {"p50": 50.0, "p99": 99.0, "max": 99.0}


def test_line_protocol_matches_influxdb_client_point() -> None:
    t = envelope.Telemetry(
        "SX-00001",
        7,
        1_795_611_623_000,
        {"cpu_pct": 12.5, "temp_c": 31, "spool_depth": 0},
        {"pin_pad": "fault", "camera": "ok"},
        {},
        {"pin_pad": 4},
    )
    assert line_for(t) == point_for(t).to_line_protocol()
    assert "peripheral_pin_pad_faults=4" in line_for(t)
    assert line_for(t).endswith(" 1795611623000")


def test_envelope_refuses_seq_and_ts_the_database_cannot_hold() -> None:
    ok = envelope.Event("T1", envelope.MAX_SEQ, envelope.MAX_TS_MS, "x", {})
    assert envelope.parse_event(ok.to_bytes(), "T1") == ok
    for seq, ts in [(2**63, 1), (1, 10**15)]:
        with pytest.raises(WireError, match="must be an integer in"):
            envelope.parse_event(envelope.Event("T1", seq, ts, "x", {}).to_bytes(), "T1")


def test_peripheral_names_must_be_plain() -> None:
    forged = envelope.Telemetry("T1", 1, 2, {}, {"x\nterminal,terminal_id=T2 cpu_pct": "ok"}, {})
    with pytest.raises(WireError, match="peripheral names"):
        envelope.parse_telemetry(forged.to_bytes(), "T1")


def test_line_protocol_escapes_hostile_names_like_point() -> None:
    # Built past the envelope's checks, as a future table or a bug might: still one record.
    t = envelope.Telemetry("T1", 1, 5, {}, {"a\nterminal,terminal_id=T2 x=1 9": "ok"}, {})
    line = line_for(t)
    assert "\n" not in line
    assert line == point_for(t).to_line_protocol()


def test_window_trusts_backlog_but_not_the_future() -> None:
    w = Window(past_ms=86_400_000, future_ms=60_000)
    now = 1_800_000_000_000
    assert w.problem(now - 86_000_000, now) is None
    assert w.problem(now + 59_000, now) is None
    assert "ahead" in (w.problem(now + 10 * 365 * 86_400_000, now) or "")
    assert "behind" in (w.problem(now - 86_400_001, now) or "")


def test_a_seq_jump_does_not_move_the_mark() -> None:
    d = TelemetryDeduper(max_step=1000, future_ms=60_000)
    start = NOW * SEQ_PER_MS  # a spool created now numbers from here
    assert d.check("A", start + 1, NOW) is Seen.NEW
    assert d.check("A", 5 * 10**15, NOW) is Seen.JUMP  # beyond any spool's clock
    assert d.check("A", start + 2, NOW) is Seen.NEW
    assert d.check("A", start + 10**9, NOW) is Seen.JUMP  # far above the mark, once
    assert d.check("A", start + 3, NOW) is Seen.NEW
    assert d.check("B", 5 * 10**15, NOW) is Seen.JUMP  # unknown terminal: the clock bounds it
    assert d.check("B", 7, NOW) is Seen.NEW


def test_a_wiped_spool_restarting_at_the_clock_is_followed_once_confirmed() -> None:
    d = TelemetryDeduper(max_step=1000)
    old = (NOW - 86_400_000) * SEQ_PER_MS
    assert d.check("A", old + 1, NOW) is Seen.NEW
    fresh = NOW * SEQ_PER_MS
    assert d.check("A", fresh + 1, NOW) is Seen.JUMP
    assert d.check("A", fresh + 2, NOW) is Seen.NEW
    assert d.check("A", old + 2, NOW) is Seen.REPEAT


async def test_write_isolating_finds_the_poison_rows_and_lands_the_rest() -> None:
    landed: list[int] = []

    async def write(rows: Sequence[int]) -> None:
        if any(r < 0 for r in rows):
            raise OverflowError("too big")
        landed.extend(rows)

    refused = await write_isolating([1, -2, 3, 4, -5, 6, 7], write)
    assert [r for r, _ in refused] == [-2, -5]
    assert sorted(landed) == [1, 3, 4, 6, 7]


async def test_write_isolating_retries_an_outage_whole() -> None:
    async def down(rows: Sequence[int]) -> None:
        raise ConnectionRefusedError("store down")

    with pytest.raises(ConnectionRefusedError):
        await write_isolating([1, 2, 3], down)


def test_a_rejected_message_keeps_its_seq_when_it_has_one() -> None:
    """What ingest confirms to the terminal for a message it dead-letters (issue 14)."""
    unknown = envelope.Telemetry("T1", 41, 2, {"cpu_pct": 1.0}, {}, {}).to_bytes()
    unknown = unknown.replace(b'"cpu_pct"', b'"newer_metric"')
    with pytest.raises(WireError, match="unknown metric"):
        classify("cuntong/v1/t/T1/telemetry", unknown, 16384)
    assert envelope.salvage_seq(unknown, 16384) == 41
    big = envelope.Event("T1", 42, 3, "note", {"blob": "x" * 20_000}).to_bytes()
    with pytest.raises(PayloadTooLarge):
        classify("cuntong/v1/t/T1/event", big, 16384)
    assert envelope.salvage_seq(big, 1 << 20) == 42
    assert envelope.salvage_seq(big, 1000) is None  # past the salvage limit: not even read
    for hopeless in (b"\xff\x00", b"[1]", b'{"seq": 0}', b'{"seq": 2e3}', b'{"seq": true}'):
        assert envelope.salvage_seq(hopeless, 16384) is None, hopeless
    assert envelope.salvage_seq(b'{"seq": 9223372036854775808}', 16384) is None


def test_dead_letters_keep_the_exact_bytes() -> None:
    text = '{"v":1,"note":"取款"}'.encode()
    assert kept_payload(text) == (text.decode(), "")
    for raw in (b"\xff\xfe garbage", b'{"a":"\x00"}'):  # not UTF-8; NUL, which text refuses
        kept, note = kept_payload(raw)
        assert kept.startswith("base64:") and "base64" in note
        assert base64.b64decode(kept.removeprefix("base64:")) == raw
    huge = b"y" * (MAX_KEPT_BYTES + 10)
    kept, note = kept_payload(huge)
    assert len(kept) == MAX_KEPT_BYTES
    assert f"of {len(huge)} bytes" in note and hashlib.sha256(huge).hexdigest() in note
