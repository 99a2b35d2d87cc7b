"""The misbehaviour watch (pure): counts per terminal in a sliding window, thresholds."""

from __future__ import annotations

import datetime as dt

import pytest

from fleet.misbehaviour import KIND, Thresholds, Watch

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
WINDOW = dt.timedelta(minutes=10)


def test_rejects_past_the_threshold_name_the_terminal_and_the_evidence() -> None:
    w = Watch(Thresholds(WINDOW, rejects=3, flaps=4))
    for signal in ("malformed", "bad_mac"):
        w.record("SX-1", signal, T0)
    w.record("SX-2", "malformed", T0)
    assert w.conditions(T0) == {}
    w.record("SX-1", "bad_mac", T0 + dt.timedelta(minutes=1))
    assert w.conditions(T0 + dt.timedelta(minutes=1)) == {
        (KIND, "SX-1", ""): "3 rejected messages (bad_mac 2, malformed 1) in 600 s"
    }


def test_flapping_connection_and_the_window_slides() -> None:
    w = Watch(Thresholds(WINDOW, rejects=0, flaps=4))
    for i, signal in enumerate(["offline", "online"] * 2):
        w.record("SX-3", signal, T0 + dt.timedelta(minutes=i))
    assert w.conditions(T0 + dt.timedelta(minutes=4)) == {
        (KIND, "SX-3", ""): "4 online/offline changes in 600 s"
    }
    # The first change leaves the window: below the threshold, the alert clears.
    assert w.conditions(T0 + dt.timedelta(minutes=10, seconds=1)) == {}
    # Quiet terminals are forgotten.
    assert w.conditions(T0 + dt.timedelta(hours=1)) == {}
    assert w.evidence("SX-3", T0 + dt.timedelta(hours=1)).flaps == 0


def test_zero_switches_a_count_off_and_unknown_signals_are_refused() -> None:
    w = Watch(Thresholds(WINDOW, rejects=0, flaps=0))
    for _ in range(50):
        w.record("SX-4", "malformed", T0)
    assert w.conditions(T0) == {}
    with pytest.raises(ValueError, match="unknown misbehaviour signal"):
        w.record("SX-4", "sneezed", T0)


def test_refused_requests_count_with_rejected_messages_and_are_named_apart() -> None:
    w = Watch(Thresholds(WINDOW, rejects=3, flaps=0))
    w.record("SX-5", "malformed", T0)
    w.record("SX-5", "subscribe_refused", T0)
    assert w.conditions(T0) == {}
    w.record("SX-5", "media_refused", T0)
    assert w.conditions(T0) == {
        (KIND, "SX-5", ""): "1 rejected messages (malformed 1); "
        "2 refused requests (media_refused 1, subscribe_refused 1) in 600 s"
    }
