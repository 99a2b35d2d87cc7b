"""Tier (a): the pipeline does the right thing on fixed inputs.

    python -m modeltools.eval.correctness

Fixed frames built from the scikit-image astronaut photograph (public domain) and plain
arrays: one face, no face, two faces, a tiny face, a dark frame. Each must give exactly the
expected reason codes. This proves the plumbing (decoding, gates, crop, ensemble call), not
that any score is right.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from edge.vision.pipeline import analyze
from edge.vision.runtime import ModelSet


def _astronaut() -> np.ndarray:
    from skimage import data  # the test photograph ships inside scikit-image

    return data.astronaut()


def _two_faces(img: np.ndarray) -> np.ndarray:
    head = img[20:320, 80:380]
    return np.ascontiguousarray(np.hstack([head, head[:, ::-1]]))


CASES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], tuple[str, ...]]] = {
    "one_face": (lambda img: img, ()),
    "one_face_640x480": (lambda img: cv2.resize(img, (640, 480)), ()),
    "no_face": (lambda img: np.full((480, 640, 3), 128, np.uint8), ("NO_FACE",)),
    "two_faces": (_two_faces, ("MULTIPLE_FACES",)),
    "tiny_face": (lambda img: cv2.resize(img, (64, 64)), ("FACE_TOO_SMALL",)),
    "dark_frame": (lambda img: (img * 0.05).astype(np.uint8), ("TOO_DARK",)),
}


def run(models: ModelSet) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(case, expected reasons, actual reasons) for every fixed input."""
    img = _astronaut()
    return [
        (name, want, analyze(models, make(img)).reasons) for name, (make, want) in CASES.items()
    ]


def main() -> None:
    rows = run(ModelSet.load())
    for name, want, got in rows:
        print(f"{'ok  ' if want == got else 'FAIL'} {name:18} expected {want} got {got}")
    if any(want != got for _, want, got in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
