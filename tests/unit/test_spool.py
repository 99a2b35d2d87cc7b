from pathlib import Path

import pytest

from common.errors import SpoolFull
from common.wire import ack
from edge.spool import Kind, Spool

NOW_MS = 1_795_611_623_000


def test_messages_leave_in_order_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    spool = Spool(path, max_rows=100, now_ms=NOW_MS)
    seqs = [spool.put(Kind.EVENT, NOW_MS + i, {"type": "e", "data": {"i": i}}) for i in range(5)]
    spool.put(Kind.TELEMETRY, NOW_MS + 9, {"metrics": {}})
    spool.close()

    reopened = Spool(path, max_rows=100, now_ms=NOW_MS + 60_000)
    entries = reopened.peek(10)
    assert [e.seq for e in entries[:5]] == seqs
    assert seqs == sorted(seqs)
    assert [e.body["data"]["i"] for e in entries[:5]] == list(range(5))
    assert entries[5].kind is Kind.TELEMETRY
    assert reopened.confirm([(seqs[0], seqs[1])]) == 2
    assert [e.seq for e in reopened.peek(10)][:1] == [seqs[2]]
    # Numbering carries on after a restart; it never goes back.
    assert reopened.put(Kind.EVENT, NOW_MS, {"type": "e", "data": {}}) > entries[-1].seq


def test_sequence_numbers_start_at_the_clock_so_a_wiped_spool_never_reuses_them(
    tmp_path: Path,
) -> None:
    first = Spool(tmp_path / "a.sqlite3", 10, NOW_MS)
    seq = first.put(Kind.EVENT, NOW_MS, {"type": "e", "data": {}})
    assert seq > NOW_MS * 1000
    later = Spool(tmp_path / "b.sqlite3", 10, NOW_MS + 1)
    assert later.put(Kind.EVENT, NOW_MS, {"type": "e", "data": {}}) > seq


def test_thinning_drops_old_telemetry_but_never_events(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_rows=20, now_ms=NOW_MS)
    events = []
    for i in range(200):
        if i % 10 == 0:
            events.append(spool.put(Kind.EVENT, NOW_MS + i, {"type": "e", "data": {"i": i}}))
        spool.put(Kind.TELEMETRY, NOW_MS + i, {"metrics": {"cpu_pct": float(i % 100)}})
    kept = spool.peek(1000)
    assert [e.seq for e in kept if e.kind is Kind.EVENT] == events
    assert spool.depth() <= 21
    assert spool.thinned > 0
    telemetry_ts = [e.ts_ms for e in kept if e.kind is Kind.TELEMETRY]
    assert telemetry_ts[-1] == NOW_MS + 199  # the newest sample is kept
    assert telemetry_ts == sorted(telemetry_ts)


def test_events_beyond_the_hard_limit_raise_instead_of_vanishing(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_rows=10, now_ms=NOW_MS)
    for i in range(spool.hard_limit):
        spool.put(Kind.EVENT, NOW_MS + i, {"type": "e", "data": {}})
    with pytest.raises(SpoolFull):
        spool.put(Kind.EVENT, NOW_MS, {"type": "e", "data": {}})
    assert spool.depth() == spool.hard_limit


def test_rows_stay_until_the_cloud_confirms_exactly_their_numbers(tmp_path: Path) -> None:
    """The broker's PUBACK deletes nothing: only a storage confirmation does, and only the
    numbers it names (a gap in the middle stays to be sent again)."""
    spool = Spool(tmp_path / "s.sqlite3", max_rows=100, now_ms=NOW_MS)
    seqs = [spool.put(Kind.TELEMETRY, NOW_MS + i, {"metrics": {}}) for i in range(6)]
    # Ingest stored all but the third: the confirmation is built by the producer's codec.
    stored = ack.parse(bytes(ack.Stored.of(seqs[:2] + seqs[3:])))
    assert stored.ranges == ((seqs[0], seqs[1]), (seqs[3], seqs[5]))
    assert spool.confirm(stored.ranges) == 5
    assert [e.seq for e in spool.peek(10)] == [seqs[2]]
    assert spool.oldest() == seqs[2]
    assert spool.confirm(stored.ranges) == 0  # confirmed twice: nothing more goes
    # A drain that has sent up to seq[2] sends only what came after.
    later = spool.put(Kind.EVENT, NOW_MS, {"type": "e", "data": {}})
    assert [e.seq for e in spool.peek_after(seqs[2], 10)] == [later]
    assert [e.seq for e in spool.peek_after(0, 10)] == [seqs[2], later]
