"""The synthetic camera source, the adapter's pacing, and the absent-device error path."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

from firmware_adapters.camera.adapter import Camera
from firmware_adapters.camera.synthetic import SKIN, read_stamp, stamp_text, synthetic_frame
from firmware_adapters.errors import DeviceAbsent

T0 = dt.datetime(2026, 11, 25, 8, 15, 30, 250_000, tzinfo=dt.UTC)


def test_frames_are_deterministic_and_carry_their_timestamp() -> None:
    a = synthetic_frame(7, T0)
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8
    assert np.array_equal(a, synthetic_frame(7, T0))
    later = synthetic_frame(7, T0 + dt.timedelta(milliseconds=40))
    assert not np.array_equal(a, later)
    assert read_stamp(a) == "081530250000007"
    assert read_stamp(later) == stamp_text(7, T0 + dt.timedelta(milliseconds=40))


def test_pattern_has_a_face_that_moves_and_blinks() -> None:
    frame = synthetic_frame(20, T0)
    centre = frame[240 - 10 : 240 + 10, 320 - 60 : 320 - 40].reshape(-1, 3)
    assert (np.abs(centre.astype(int) - SKIN).sum(axis=1) < 10).mean() > 0.9
    moved = synthetic_frame(40, T0)
    assert np.abs(frame.astype(int) - moved).mean() > 1  # the face sways
    eyes_row = slice(130, 250)
    open_dark = (synthetic_frame(10, T0)[eyes_row] < 50).all(axis=2).sum()
    blink_dark = (synthetic_frame(91, T0)[eyes_row] < 50).all(axis=2).sum()
    assert blink_dark < open_dark


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        synthetic_frame(0, dt.datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test


async def test_synthetic_camera_paces_frames_and_reports_health() -> None:
    async with Camera("camera", fps=30, width=320, height=240) as cam:
        start = time.monotonic()
        frames = [f async for f in cam.frames(limit=10)]
        elapsed = time.monotonic() - start
        assert (await cam.self_test()).passed
    assert [f.index for f in frames] == list(range(10))
    assert frames[0].size == (320, 240)
    assert 0.25 < elapsed < 3.0  # 9 periods of 1/30 s (slack for a loaded machine)
    assert all(f.timestamp.tzinfo is not None for f in frames)
    assert cam.health().state == "ok"


@pytest.mark.parametrize("device", ["/dev/video-cuntong-missing", "/dev/null"])
async def test_absent_or_unusable_v4l2_device(device: str) -> None:
    cam = Camera("camera", device=device)
    with pytest.raises(DeviceAbsent):
        await cam.open()
    assert cam.health().state == "absent"
    with pytest.raises(DeviceAbsent):
        await cam.read_frame()
    result = await cam.self_test()
    assert not result.passed and "DeviceAbsent" in result.detail
    assert cam.health().faults == 3
