"""A deterministic face-like test pattern with the capture time drawn into it.

Pure numpy: `synthetic_frame(index, when)` always gives the same pixels for the same
arguments, so tests and the liveness pipeline's fixtures can rely on them. The face (skin
ellipse, two eyes, a mouth) sways slowly with the frame index and blinks every 90 frames, so
a motion-based check has something to see. The timestamp (HHMMSSmmm in UTC) and the frame
index are drawn with a 3x5 bitmap font at the top left and can be read back with
`read_stamp`.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt

Pixels = npt.NDArray[np.uint8]

#: 3x5 bitmaps of the digits, one row string per line
FONT: dict[str, tuple[str, ...]] = {
    "0": ("111", "101", "101", "101", "111"),
    "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"),
    "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"),
    "9": ("111", "101", "111", "001", "111"),
}
SCALE = 3  # pixels per font dot
ORIGIN = (4, 4)
STAMP_DIGITS = 9 + 6  # HHMMSSmmm + 6-digit frame index
SKIN = (224, 172, 140)


def stamp_text(index: int, when: dt.datetime) -> str:
    t = when.astimezone(dt.UTC)
    return f"{t:%H%M%S}{t.microsecond // 1000:03d}{index % 1_000_000:06d}"


def synthetic_frame(index: int, when: dt.datetime, width: int = 640, height: int = 480) -> Pixels:
    """One RGB frame (height x width x 3) of the test pattern."""
    if when.tzinfo is None:
        raise ValueError("synthetic frames need an aware datetime")
    yy, xx = np.mgrid[0:height, 0:width]
    frame = np.empty((height, width, 3), np.uint8)
    frame[..., 0] = 40 + (xx * 60 // width)
    frame[..., 1] = 60 + (yy * 60 // height)
    frame[..., 2] = 90
    sway = int(width * 0.03 * np.sin(index / 15))
    cx, cy = width // 2 + sway, height // 2 + height // 20
    rx, ry = width // 7, height // 4
    face = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    frame[face] = SKIN
    eye_open = index % 90 >= 4  # a short blink every 90 frames
    eye_ry = max(1, ry // 10) if eye_open else 1
    for ex in (cx - rx // 2.5, cx + rx // 2.5):
        eye = ((xx - ex) / (rx // 6)) ** 2 + ((yy - (cy - ry // 4)) / eye_ry) ** 2 <= 1
        frame[eye] = (30, 30, 40)
    mouth = (abs(xx - cx) < rx // 2) & (abs(yy - (cy + ry // 2)) < max(1, ry // 20))
    frame[mouth] = (150, 60, 60)
    _draw_text(frame, stamp_text(index, when))
    return frame


def _draw_text(frame: Pixels, text: str) -> None:
    x0, y0 = ORIGIN
    frame[y0 - 2 : y0 + 5 * SCALE + 2, x0 - 2 : x0 + len(text) * 4 * SCALE + 2] = 0
    for i, ch in enumerate(text):
        for row, bits in enumerate(FONT[ch]):
            for col, bit in enumerate(bits):
                if bit == "1":
                    y, x = y0 + row * SCALE, x0 + (i * 4 + col) * SCALE
                    frame[y : y + SCALE, x : x + SCALE] = 255


def read_stamp(frame: Pixels) -> str:
    """The digits drawn by `synthetic_frame` (ValueError if they are not there)."""
    x0, y0 = ORIGIN
    patterns = {v: k for k, v in FONT.items()}
    out = ""
    for i in range(STAMP_DIGITS):
        rows = tuple(
            "".join(
                "1" if frame[y0 + row * SCALE + 1, x0 + (i * 4 + col) * SCALE + 1, 0] > 127 else "0"
                for col in range(3)
            )
            for row in range(5)
        )
        if rows not in patterns:
            raise ValueError(f"no digit at position {i}")
        out += patterns[rows]
    return out
