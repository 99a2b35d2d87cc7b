"""The capture-time barcode survives VP8 at call bitrates and refuses pictures it did not draw."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tests.callbench import barcode
from tests.callbench.media import HEIGHT, WIDTH, encode_clip


def test_round_trip_and_wrap() -> None:
    luma = np.full((HEIGHT, WIDTH), 90, np.uint8)
    for value in (0, 1, 0xDEADBEEF, (1 << barcode.BITS) - 1):
        barcode.draw(luma, value)
        assert barcode.read(luma) == value
    now = 1_764_000_000.5
    assert barcode.age_ms(barcode.stamp_ms(now - 0.25), now) == 250
    # across the wrap of the 32-bit millisecond counter (every 49.7 days)
    assert barcode.age_ms((1 << barcode.BITS) - 4, 0.0055) == 9


def test_refuses_what_it_did_not_draw() -> None:
    rng = np.random.default_rng(3)
    assert barcode.read(rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)) is None
    assert barcode.read(np.full((HEIGHT, WIDTH), 128, np.uint8)) is None
    luma = np.zeros((HEIGHT, WIDTH), np.uint8)
    barcode.draw(luma, 12345)
    luma[barcode.BLOCK : 2 * barcode.BLOCK, :] = luma[: barcode.BLOCK, :]  # rows agree: forged
    assert barcode.read(luma) is None
    assert barcode.read(luma[:10]) is None
    with pytest.raises(ValueError):
        barcode.draw(luma, 1 << barcode.BITS)
    with pytest.raises(ValueError):
        barcode.draw(np.zeros((20, 20), np.uint8), 1)


def test_every_frame_of_the_encoded_clip_reads_back() -> None:
    clip = encode_clip(seconds=2.0)
    assert clip.keyframes[0] and 300 < clip.video_kbps < 500
    decoder = av.CodecContext.create("libvpx", "r")
    read = []
    for data in clip.frames:
        for frame in decoder.decode(av.Packet(data)):
            read.append(barcode.read(frame.to_ndarray(format="yuv420p")[:HEIGHT]))
    assert read == list(range(60))
    assert len(clip.audio) == 100  # 2 s of 20 ms Opus packets
