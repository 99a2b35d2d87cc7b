"""The ERLE measure itself, on signals whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from edge.teller import echo

RATE = 16000


def _speech_like(seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = (np.sin(2 * np.pi * 2 * t) > 0).astype(float)  # talk, pause, talk ...
    return (8000 * envelope * rng.standard_normal(len(t))).clip(-32767, 32767).astype(np.int16)


def test_ten_times_quieter_is_20_db() -> None:
    before = _speech_like(6)
    after = (before / 10).astype(np.int16)
    got = echo.erle(before, after, RATE)
    assert got.db == pytest.approx(20.0, abs=0.1)
    assert got.median_db == pytest.approx(20.0, abs=0.1)
    assert 90 < got.frames < 110  # 4 s after the first 2, half of it pauses


def test_no_cancellation_is_0_db_and_silence_is_refused() -> None:
    before = _speech_like(4)
    assert echo.erle(before, before, RATE).db == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no far-end speech"):
        echo.erle(np.zeros(RATE * 4, np.int16), np.zeros(RATE * 4, np.int16), RATE)


def test_lag_finds_how_far_one_recording_runs_behind_the_other() -> None:
    voice = _speech_like(2)
    late = np.concatenate([np.zeros(1234, np.int16), voice])[: len(voice)]
    assert echo.lag(voice, late, RATE // 2) == 1234
    assert echo.lag(late, voice, RATE // 2) == -1234
    assert echo.lag(voice, voice, RATE // 2) == 0


def test_the_rig_line_can_turn_drift_realignment_off() -> None:
    assert "adjust_time" not in echo.module_line("mic", "spk")  # a terminal: the default
    assert " adjust_time=0 " in echo.module_line("mic", "spk", adjust_time=0)


def test_the_module_line_keeps_gain_control_and_noise_suppression_off() -> None:
    line = echo.module_line("mic", "spk")
    assert "aec_method=webrtc" in line and "source_name=aec_mic sink_name=aec_spk" in line
    assert 'aec_args="analog_gain_control=0 digital_gain_control=0 noise_suppression=0' in line
