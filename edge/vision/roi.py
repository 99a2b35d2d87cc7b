"""Face-aware video for weak village links (300-500 kbit/s), as pure functions.

`preprocess(frame, box)` keeps the face (the detector's box grown by `margin` = 30% a side,
which covers the 1.4× crop the passive model and the teller look at) pixel-exact
and replaces everything else with a low-pass copy (down-scaled then up-scaled), feathered at
the edge so no seam forms a costly block boundary. VP8 then spends its bits where the teller
and the liveness check look: the encoder sees a background with no fine texture and no sensor
noise to code. `BackgroundSmoother` adds the time axis: an exponential average of the
background removes frame-to-frame noise flicker, the other big bit sink on a still scene.

`encoder_settings(link_kbps, loss)` picks Opus and VP8 parameters and a resolution / frame
rate rung for a measured link instead of aiortc's defaults (VP8 floor 250 kbit/s, 500 kbit/s
start, full camera resolution), which do not fit a 300 kbit/s link.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[float, float, float, float]


def face_region(box: Box, shape: tuple[int, ...], margin: float = 0.3) -> tuple[int, int, int, int]:
    """The face box grown by `margin` of its size on each side, clipped to the frame."""
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    h, w = shape[:2]
    return (max(0, int(x0 - mx)), max(0, int(y0 - my)), min(w, int(x1 + mx)), min(h, int(y1 + my)))


def face_mask(box: Box | None, shape: tuple[int, ...], margin: float = 0.3, feather: int = 12):
    """Float mask H×W×1: 1 on the face region, 0 on the background, a soft ramp between."""
    h, w = shape[:2]
    mask = np.zeros((h, w), np.float32)
    if box is not None:
        x0, y0, x1, y1 = face_region(box, shape, margin)
        mask[y0:y1, x0:x1] = 1.0
        if feather:
            k = 2 * feather + 1
            mask = cv2.GaussianBlur(mask, (k, k), feather / 2)
            mask[y0 + feather : y1 - feather, x0 + feather : x1 - feather] = 1.0
    return mask[..., None]


def low_pass(frame: np.ndarray, factor: int = 8) -> np.ndarray:
    """Down-scale by `factor` (area average, which also averages sensor noise away) and back."""
    h, w = frame.shape[:2]
    small = cv2.resize(
        frame, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def blend(sharp: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = background.astype(np.float32) + mask * (sharp.astype(np.float32) - background)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def preprocess(
    frame: np.ndarray, box: Box | None, factor: int = 8, margin: float = 0.3, feather: int = 12
) -> np.ndarray:
    """The frame with a sharp face and a low-passed background (no face: all low-passed)."""
    return blend(frame, low_pass(frame, factor), face_mask(box, frame.shape, margin, feather))


class BackgroundSmoother:
    """Spatial low-pass plus an exponential average over time for the background.

    State is only the running background (already blurred: no face detail is kept beyond
    the low-pass copy the encoder would receive anyway).
    """

    def __init__(self, factor: int = 8, alpha: float = 0.1, margin: float = 0.3) -> None:
        self.factor, self.alpha, self.margin = factor, alpha, margin
        self._bg: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, box: Box | None) -> np.ndarray:
        bg = low_pass(frame, self.factor).astype(np.float32)
        if self._bg is not None and self._bg.shape == bg.shape:
            bg = self._bg + self.alpha * (bg - self._bg)
        self._bg = bg
        return blend(frame, bg, face_mask(box, frame.shape, self.margin))


# -- encoder settings ---------------------------------------------------------------------

# (width, height, fps) from best to most frugal; 4:3 like the terminals' cameras.
LADDER = (
    (640, 480, 15),
    (480, 360, 15),
    (480, 360, 12),
    (320, 240, 15),
    (320, 240, 10),
    (240, 180, 8),
)
MIN_BITS_PER_PIXEL = 0.09  # below this VP8 smears a talking head at these sizes
PACKET_OVERHEAD = 0.08  # IP/UDP/SRTP/RTP headers on small packets


@dataclass(frozen=True)
class EncoderSettings:
    """What to configure on the sender for one measured link."""

    audio_bps: int
    audio_channels: int
    opus_fec: bool
    opus_ptime_ms: int
    video_bps: int
    video_min_bps: int
    video_max_bps: int
    width: int
    height: int
    fps: int


def encoder_settings(link_kbps: float, loss: float = 0.0) -> EncoderSettings:
    """Opus 16-24 kbit/s mono and the richest VP8 rung the remaining budget carries.

    Loss of 3% or more (the village 4G link's usual) turns on Opus in-band FEC at 24 kbit/s
    (libopus put no FEC into a 16 kbit/s stream: docs/benchmarks/weak-link.md) with 40 ms
    packets (fewer headers), keeps a fifth
    of the video budget free for retransmissions and keyframe bursts (a link run full turns
    its buffer into delay, and NACKs arrive too late), and asks more bits of each pixel
    (smaller frames, smaller keyframes). VP8's ceiling is the budget itself: REMB may lower
    the rate, never raise it past what the link carries.
    """
    if link_kbps <= 0:
        raise ValueError("link rate must be positive")
    lossy = loss >= 0.03
    audio = 24_000 if lossy or link_kbps >= 400 else 16_000
    budget = link_kbps * 1000 * (1 - PACKET_OVERHEAD) - audio
    if lossy:
        budget *= 0.8
    video = int(max(budget, 60_000))
    bits_per_pixel = MIN_BITS_PER_PIXEL * (1.5 if lossy else 1.0)
    rung = next((r for r in LADDER if video / (r[0] * r[1] * r[2]) >= bits_per_pixel), LADDER[-1])
    return EncoderSettings(
        audio_bps=audio,
        audio_channels=1,
        opus_fec=lossy,
        opus_ptime_ms=40 if lossy else 20,
        video_bps=video,
        video_min_bps=max(50_000, video // 3),
        video_max_bps=video,
        width=rung[0],
        height=rung[1],
        fps=rung[2],
    )
