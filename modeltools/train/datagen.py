"""Training and evaluation samples for the passive baseline, generated from a seed.

Scenes are random crops of the photographs scikit-image ships (public domain or CC0 per its
data README: the astronaut portrait, a cat, coffee, a rocket, the cameraman, brick, grass and
gravel textures), weighted towards the one real face. A bona fide sample is the scene through
`attacks.camera`; an attack sample is the same scene through a simulated print or screen
replay. Every sample is then resized to the model input as `edge.vision.classifier.crop` does.

What this is not: no real presentation attack was ever photographed, there is one human face,
and there are no real terminal cameras. See docs/vision.md.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from modeltools.train import attacks
from modeltools.train.features import SIZE

FACE_BOX = (178, 81, 272, 175)  # the astronaut's face in the 512×512 photograph


def sources() -> list[tuple[np.ndarray, float]]:
    """(image, sampling weight) pairs from scikit-image's bundled data."""
    from skimage import data  # build-time only: scikit-image is a dev/models-build dependency

    def rgb(img: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.dstack([img] * 3) if img.ndim == 2 else img[..., :3])

    images = [(data.astronaut(), 4.0)]
    for name in ("chelsea", "coffee", "rocket", "camera", "brick", "grass"):
        images.append((rgb(getattr(data, name)()), 1.0))
    images.append((rgb(data.gravel()), 1.0))
    return images


def scene(rng: np.random.Generator, images: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A square crop at a random size, as a face crop from a terminal frame would be."""
    weights = np.array([w for _, w in images])
    img, _ = images[rng.choice(len(images), p=weights / weights.sum())]
    h, w = img.shape[:2]
    if img is images[0][0]:  # around the face, with jitter, like a detector box ×1.2-1.6
        x0, y0, x1, y1 = FACE_BOX
        side = (x1 - x0) * rng.uniform(1.2, 1.9)
        cx, cy = (x0 + x1) / 2 + rng.normal(0, 8), (y0 + y1) / 2 + rng.normal(0, 8)
    else:
        side = rng.uniform(96, min(h, w))
        cx, cy = rng.uniform(side / 2, w - side / 2), rng.uniform(side / 2, h - side / 2)
    x, y = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
    s = int(min(side, w - x, h - y))
    crop = img[y : y + s, x : x + s]
    out = int(rng.integers(128, 300))  # the crop's size in frame pixels before resizing
    interp = cv2.INTER_AREA if s > out else cv2.INTER_CUBIC
    return cv2.resize(crop, (out, out), interpolation=interp)


def to_model(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def dataset(
    seed: int,
    n: int,
    kinds: dict[str, Callable[..., np.ndarray]] | None = None,
    strength: tuple[float, float] = (0.6, 1.2),
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`n` bona fide and `n` attack samples: (N×96×96×3 uint8, labels 1=bona fide, kinds)."""
    rng = np.random.default_rng(seed)
    images = sources()
    kinds = kinds or {"print": attacks.print_attack, "screen": attacks.screen_attack}
    names = sorted(kinds)
    xs, ys, ks = [], [], []
    for i in range(n):
        base = scene(rng, images)
        xs.append(to_model(attacks.camera(base, rng)))
        ys.append(1)
        ks.append("bona_fide")
        kind = names[i % len(names)]
        xs.append(to_model(kinds[kind](base, rng, rng.uniform(*strength))))
        ys.append(0)
        ks.append(kind)
    return np.stack(xs), np.array(ys), ks
