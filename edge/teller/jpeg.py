"""JPEG for the customer screen (MJPEG views) and document captures: OpenCV, imported late."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

QUALITY = 80


def encode_rgb(pixels: np.ndarray, quality: int = QUALITY) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def encode_frame(frame: Any, width: int = 640) -> bytes:
    """A decoded av.VideoFrame (the teller's video) as JPEG, at most ``width`` wide."""
    if frame.width > width:
        frame = frame.reformat(width=width, height=frame.height * width // frame.width)
    return encode_rgb(frame.to_ndarray(format="rgb24"))


def synthetic_document(kind: str, width: int = 856, height: int = 540) -> bytes:
    """A card-sized simulated document with its kind written on it (ID card 85.6 x 54 mm)."""
    card = np.full((height, width, 3), 235, np.uint8)
    cv2.rectangle(card, (20, 20), (width - 20, height - 20), (40, 90, 160), 6)
    cv2.putText(card, "SIMULATED " + kind.upper(), (60, 120), 0, 1.6, (20, 20, 20), 3)
    for i in range(5):
        y = 200 + i * 60
        cv2.line(card, (60, y), (width - 260, y), (120, 120, 120), 4)
    cv2.rectangle(card, (width - 220, 170), (width - 60, 400), (180, 160, 140), -1)
    return encode_rgb(card)
