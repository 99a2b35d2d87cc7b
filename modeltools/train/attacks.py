"""Simulated presentation attacks: what a printed photo or a replayed screen does to an image.

Each function takes an RGB uint8 "scene" (a face as the attacker's print or screen shows it)
and a seeded `numpy.random.Generator`, and returns what the terminal camera would capture. They
model the artefacts passive anti-spoofing literature relies on — halftone dots, screen moiré,
reduced gamut and raised blacks, specular glare, recapture blur — and nothing else: no paper
edges, no hands, no 3-D masks, no real camera optics. Used by the training data generator and
by the robustness suite (`modeltools.eval.robustness`), with different seeds and strengths.
"""

from __future__ import annotations

import cv2
import numpy as np

Rng = np.random.Generator


def _f(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) / 255.0


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def camera(img: np.ndarray, rng: Rng) -> np.ndarray:
    """A terminal webcam's own capture: slight blur, sensor noise, exposure, JPEG."""
    x = _f(img)
    sigma = rng.uniform(0.0, 0.7)
    if sigma > 0.1:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    x = x * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    x = x + rng.normal(0, rng.uniform(0.004, 0.016), x.shape).astype(np.float32)
    ok, buf = cv2.imencode(".jpg", _u8(x), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(75, 96))])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)


def gamut(img: np.ndarray, rng: Rng, medium: str, strength: float = 1.0) -> np.ndarray:
    """Reduced colour range of paper or a panel: desaturation, raised blacks, colour cast."""
    x = _f(img)
    grey = x.mean(axis=2, keepdims=True)
    sat = 1.0 - strength * rng.uniform(0.15, 0.4)
    x = grey + (x - grey) * sat
    black, white = strength * rng.uniform(0.05, 0.15), 1.0 - strength * rng.uniform(0.03, 0.12)
    x = black + x * (white - black)
    cast = (
        np.float32([1.0, 1.0, 1.0 + rng.uniform(0.03, 0.1) * strength])
        if medium == "screen"
        else np.float32([1.0 + rng.uniform(0.0, 0.06) * strength, 1.0, 0.97])
    )
    return _u8(x * cast)


def halftone(img: np.ndarray, rng: Rng, strength: float = 1.0) -> np.ndarray:
    """Printed dots: each of C, M, Y screened at its own angle, then slight ink spread."""
    h, w = img.shape[:2]
    period = rng.uniform(2.5, 5.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ink = 1.0 - _f(img)  # CMY
    out = np.empty_like(ink)
    for c, base in enumerate((15.0, 75.0, 0.0)):
        a = np.deg2rad(base + rng.uniform(-5, 5))
        u, v = xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)
        screen = (np.cos(2 * np.pi * u / period) + np.cos(2 * np.pi * v / period)) / 4 + 0.5
        out[..., c] = (ink[..., c] > screen).astype(np.float32)
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 0.8))
    mix = np.clip(strength * rng.uniform(0.5, 0.9), 0, 1)
    return _u8(1.0 - (mix * out + (1 - mix) * ink))


def moire(img: np.ndarray, rng: Rng, strength: float = 1.0) -> np.ndarray:
    """A screen's sub-pixel grid seen by a camera: aliased stripes and interference fringes."""
    h, w = img.shape[:2]
    x = _f(img)
    pitch = rng.uniform(2.2, 4.5)
    a = np.deg2rad(rng.uniform(-20, 20))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = xx * np.cos(a) + yy * np.sin(a)
    for c in range(3):  # RGB stripes, one third of a pitch apart
        stripe = 0.5 + 0.5 * np.cos(2 * np.pi * (u / pitch - c / 3))
        x[..., c] *= 1.0 - strength * 0.35 * stripe
    f = rng.uniform(0.03, 0.12)
    b = np.deg2rad(rng.uniform(0, 180))
    fringe = np.cos(2 * np.pi * f * (xx * np.cos(b) + yy * np.sin(b)) + rng.uniform(0, 6.3))
    x = x * (1.0 + strength * rng.uniform(0.04, 0.12) * fringe[..., None])
    return _u8(x / max(1.0 - strength * 0.175, 0.3))


def glare(img: np.ndarray, rng: Rng, strength: float = 1.0) -> np.ndarray:
    """A specular reflection of room light on glossy paper or glass."""
    h, w = img.shape[:2]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    r = rng.uniform(0.15, 0.5) * max(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return _u8(_f(img) + strength * rng.uniform(0.25, 0.7) * blob[..., None])


def recapture_blur(img: np.ndarray, rng: Rng, strength: float = 1.0) -> np.ndarray:
    """Defocus of a camera focused on a flat medium held close, plus slight motion."""
    x = cv2.GaussianBlur(_f(img), (0, 0), 0.4 + strength * rng.uniform(0.2, 1.0))
    k = int(rng.integers(1, 4))
    if k > 1:
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        x = cv2.filter2D(x, -1, kernel)
    return _u8(x)


def print_attack(img: np.ndarray, rng: Rng, strength: float = 1.0) -> np.ndarray:
    x = halftone(gamut(img, rng, "print", strength), rng, strength)
    if rng.random() < 0.5:
        x = glare(x, rng, strength)
    return camera(recapture_blur(x, rng, strength), rng)


def screen_attack(img: np.ndarray, rng: Rng, strength: float = 1.0) -> np.ndarray:
    x = moire(gamut(img, rng, "screen", strength), rng, strength)
    if rng.random() < 0.5:
        x = glare(x, rng, strength)
    return camera(recapture_blur(x, rng, strength), rng)


# Single-artefact attacks for the robustness suite; the composite ones for training.
ATTACKS = {
    "print": print_attack,
    "screen": screen_attack,
    "halftone": lambda img, rng, s=1.0: camera(halftone(img, rng, s), rng),
    "moire": lambda img, rng, s=1.0: camera(moire(img, rng, s), rng),
    "gamut": lambda img, rng, s=1.0: camera(gamut(img, rng, "screen", s), rng),
    "glare": lambda img, rng, s=1.0: camera(glare(img, rng, s), rng),
    "recapture_blur": lambda img, rng, s=1.0: camera(recapture_blur(img, rng, s), rng),
}
