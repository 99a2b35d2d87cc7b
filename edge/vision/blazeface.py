"""BlazeFace (MediaPipe short-range face detector) pre- and post-processing, pure numpy.

The model takes a 128×128 RGB image scaled to [-1, 1] (NCHW here, see models/build) and
returns 896 anchor-relative boxes with 6 keypoints each, plus one logit per anchor. The frame is
letterboxed to a square first so boxes map back without distortion. Decoding and weighted
non-maximum suppression follow MediaPipe's `face_detection_short_range` graph options.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SIZE = 128
MIN_SCORE = 0.5
NMS_IOU = 0.3
# Keypoint order in the model output.
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")


def _anchors() -> np.ndarray:
    """896 anchor centres: 16×16 cells × 2 (stride 8) then 8×8 cells × 6 (stride 16)."""
    rows = []
    for cells, per_cell in ((16, 2), (8, 6)):
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        rows.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(rows).astype(np.float32)


ANCHORS = _anchors()


@dataclass(frozen=True)
class Face:
    """A detected face in frame pixels: box (x0, y0, x1, y1), score, 6 keypoints (x, y)."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class Letterbox:
    """How a frame was padded and scaled into the 128×128 input."""

    scale: float  # input pixels per frame pixel
    pad_x: float
    pad_y: float

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        """Map normalised [0, 1] input coordinates back to frame pixels."""
        return (xy * SIZE - (self.pad_x, self.pad_y)) / self.scale


def preprocess(frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
    """RGB uint8 H×W×3 → (1×3×128×128 float32 in [-1, 1], letterbox)."""
    h, w = frame.shape[:2]
    scale = SIZE / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    pad_y, pad_x = (SIZE - nh) // 2, (SIZE - nw) // 2
    canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
    canvas[pad_y : pad_y + nh, pad_x : pad_x + nw] = small
    x = canvas.astype(np.float32).transpose(2, 0, 1)[None] / 127.5 - 1.0
    return x, Letterbox(scale, pad_x, pad_y)


def decode(regressors: np.ndarray, logits: np.ndarray, lb: Letterbox) -> list[Face]:
    """Model outputs (1×896×16, 1×896×1) → faces in frame pixels, best first."""
    reg = regressors.reshape(-1, 16) / SIZE
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -100, 100)))
    keep = np.flatnonzero(scores >= MIN_SCORE)
    if keep.size == 0:
        return []
    reg, scores, anchors = reg[keep], scores[keep], ANCHORS[keep]
    centre = reg[:, 0:2] + anchors
    half = reg[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    kps = reg[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    faces = []
    for group in _weighted_nms_groups(boxes, scores):
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kp = (kps[group] * w[:, :, None]).sum(0) / w.sum()
        corners = lb.to_frame(box.reshape(2, 2)).reshape(-1)
        faces.append(
            Face(
                box=tuple(float(v) for v in corners),  # type: ignore[arg-type]
                score=float(scores[group[0]]),
                keypoints=lb.to_frame(kp),
            )
        )
    return faces


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)  # noqa: E731
    return inter / (area(box) + area(boxes) - inter + 1e-9)


def _weighted_nms_groups(boxes: np.ndarray, scores: np.ndarray) -> list[np.ndarray]:
    """Indices grouped by overlap with the best remaining box (MediaPipe's WEIGHTED NMS)."""
    order = np.argsort(-scores)
    groups = []
    while order.size:
        overlap = _iou(boxes[order[0]], boxes[order]) > NMS_IOU
        groups.append(order[overlap])
        order = order[~overlap]
    return groups
