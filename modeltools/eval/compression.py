"""Measure face-aware compression: VP8 (libvpx through PyAV) on a synthetic terminal video.

The video is a terminal's view: the astronaut portrait (public domain, from scikit-image) in
front of a detailed still background (scikit-image's coffee and cat photographs), swaying a
few pixels, with camera sensor noise on every frame. Plain and face-aware (`edge.vision.roi`)
versions are encoded at the same target bit rates; quality is PSNR and SSIM of the face crop
(the detector's box grown 1.4×, what the passive model and the teller look at) against the
camera frames, and the detector is run again on the decoded face-aware video.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

W, H, FPS = 640, 480, 15


def synthetic_video(n: int, seed: int = 3) -> list[np.ndarray]:
    from skimage import data

    rng = np.random.default_rng(seed)
    bg = cv2.resize(np.hstack([data.coffee()[:300, :400], data.chelsea()[:300, :400]]), (W, H))
    # Head and shoulders filling most of the frame height, face about 150 px wide, as a
    # customer seated at the terminal appears.
    person = cv2.resize(data.astronaut()[30:330, 80:380], (440, 440), interpolation=cv2.INTER_CUBIC)
    frames = []
    for i in range(n):
        frame = bg.copy()
        dx, dy = int(6 * np.sin(i / 7)), int(3 * np.sin(i / 11))
        x, y = 100 + dx, 36 + dy
        frame[y : y + 440, x : x + 440] = person
        noisy = frame.astype(np.float32) + rng.normal(0, 3.0, frame.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return frames


@dataclass(frozen=True)
class Encoded:
    bits: int
    decoded: list[np.ndarray]

    @property
    def kbps(self) -> float:
        return self.bits / (len(self.decoded) / FPS) / 1000


def encode_vp8(frames: list[np.ndarray], bitrate: int) -> Encoded:
    """Real-time VP8 at `bitrate` bit/s (CBR, as WebRTC runs it); returns size and decoded.

    Speed is fixed (cpu-used -8): a positive value lets libvpx pick its speed from wall-clock
    timing, which makes the output depend on machine load.
    """
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base = Fraction(1, FPS)
    enc.framerate = Fraction(FPS, 1)
    enc.bit_rate = bitrate
    enc.options = {
        "deadline": "realtime",
        "cpu-used": "-8",
        "lag-in-frames": "0",
        "rc_lookahead": "0",
        "error-resilient": "1",
        "g": "300",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),
    }
    dec = av.CodecContext.create("vp8", "r")
    bits, decoded = 0, []
    for i, f in enumerate([*frames, None]):
        vf = None
        if f is not None:
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
        for packet in enc.encode(vf):
            bits += packet.size * 8
            decoded += [d.to_ndarray(format="rgb24") for d in dec.decode(packet)]
    return Encoded(bits, decoded)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-9)))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM on the luma, Gaussian window σ 1.5 (Wang et al. 2004 constants)."""

    def y(x):
        return cv2.cvtColor(x, cv2.COLOR_RGB2GRAY).astype(np.float64)

    x1, x2 = y(a), y(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda z: cv2.GaussianBlur(z, (11, 11), 1.5)  # noqa: E731
    m1, m2 = blur(x1), blur(x2)
    s1, s2, s12 = blur(x1 * x1) - m1**2, blur(x2 * x2) - m2**2, blur(x1 * x2) - m1 * m2
    num = (2 * m1 * m2 + c1) * (2 * s12 + c2)
    return float(np.mean(num / ((m1**2 + m2**2 + c1) * (s1 + s2 + c2))))


def face_crop(frame: np.ndarray, box, grow: float = 1.4) -> np.ndarray:
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * grow / 2
    return frame[max(0, int(cy - half)) : int(cy + half), max(0, int(cx - half)) : int(cx + half)]


def face_quality(originals, decoded, boxes) -> tuple[float, float]:
    """Mean face-crop PSNR and SSIM of decoded frames against the camera frames."""
    p = [
        psnr(face_crop(o, b), face_crop(d, b))
        for o, d, b in zip(originals, decoded, boxes, strict=True)
    ]
    s = [
        ssim(face_crop(o, b), face_crop(d, b))
        for o, d, b in zip(originals, decoded, boxes, strict=True)
    ]
    return float(np.mean(p)), float(np.mean(s))


def bits_at_quality(curve: list[tuple[float, float]], target: float) -> float:
    """Bits a rate-quality curve [(bits, quality)] needs for `target` (log-linear interpolation)."""
    pts = sorted(curve, key=lambda c: c[1])
    for (b0, q0), (b1, q1) in itertools.pairwise(pts):
        if q0 <= target <= q1:
            t = (target - q0) / (q1 - q0) if q1 > q0 else 0.0
            return float(np.exp(np.log(b0) + t * (np.log(b1) - np.log(b0))))
    raise ValueError(f"quality {target:.3f} is outside the measured curve")
