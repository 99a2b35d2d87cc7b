"""Edits of the real astronaut photograph that act out the challenge: closed eyes, an open
mouth, a head turned left or right. Crude (inpainted eyes, a painted mouth, a warped face), but
real pixels through the real models: the mesh must see the change for a test to pass.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.vision import facemesh, pipeline
from edge.vision.runtime import ModelSet


def mesh_points(models: ModelSet, frame: np.ndarray) -> np.ndarray:
    (face,) = pipeline.detect(models, frame)
    x, m = facemesh.preprocess(frame, face)
    mesh, _ = facemesh.decode(*models.landmarks.run(x).values())
    return facemesh.to_frame(mesh, m)


def close_eyes(frame: np.ndarray, pts: np.ndarray) -> np.ndarray:
    out = frame.copy()
    for idx in (facemesh.RIGHT_EYE, facemesh.LEFT_EYE):
        p = pts[list(idx)]
        c, w = p.mean(0), np.linalg.norm(p[0] - p[3])
        mask = np.zeros(frame.shape[:2], np.uint8)
        cv2.ellipse(mask, (int(c[0]), int(c[1])), (int(w * 0.7), int(w * 0.45)), 0, 0, 360, 255, -1)
        out = cv2.inpaint(out, mask, 5, cv2.INPAINT_TELEA)
    return out


def open_mouth(frame: np.ndarray, pts: np.ndarray) -> np.ndarray:
    out = frame.copy()
    p = pts[[facemesh.MOUTH_UPPER, facemesh.MOUTH_LOWER, facemesh.MOUTH_LEFT, facemesh.MOUTH_RIGHT]]
    c, w = (p[0] + p[1]) / 2, np.linalg.norm(p[2] - p[3])
    centre, axes = (int(c[0]), int(c[1] + w * 0.2)), (int(w * 0.42), int(w * 0.4))
    cv2.ellipse(out, centre, axes, 0, 0, 360, (45, 15, 20), -1, cv2.LINE_AA)
    return out


def turn(frame: np.ndarray, box: tuple[float, float, float, float], shift: float) -> np.ndarray:
    """Slide the middle of the face sideways by `shift` pixels, cheeks fixed."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = box
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    t = np.clip((xs - (x0 + x1) / 2) / ((x1 - x0) * 0.75), -1, 1)
    v = np.clip((ys - (y0 + y1) / 2) / ((y1 - y0) * 0.9), -1, 1)
    mapx = xs - shift * (1 - t**2) * (1 - v**2)
    return cv2.remap(frame, mapx, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def acted(models: ModelSet, frame: np.ndarray) -> dict[str, list[np.ndarray]]:
    """For each challenge action, the frames a cooperative customer would show."""
    pts = mesh_points(models, frame)
    (face,) = pipeline.detect(models, frame)
    right, left = turn(frame, face.box, 40), turn(frame, face.box, -55)
    return {
        "neutral": [frame],
        "blink": [frame, close_eyes(frame, pts), frame],
        "mouth": [frame, open_mouth(frame, pts), frame],
        # A slow shake: each side held for two frames (the challenge and planarity need both).
        "shake": [frame, right, right, left, left, frame],
    }
