import pytest

from cloud.ingest.classify import IngestStats, TelemetryDeduper, classify
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


def test_deduper_drops_repeats_and_forgets_oldest_terminals() -> None:
    d = TelemetryDeduper(capacity=2)
    assert d.is_new("A", 5)
    assert not d.is_new("A", 5)
    assert not d.is_new("A", 4)
    assert d.is_new("A", 6)
    assert d.is_new("B", 1)
    assert d.is_new("C", 1)  # evicts A, the least recently heard
    assert d.is_new("A", 3)
    d.seed("D", 10)
    assert not d.is_new("D", 10)


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
