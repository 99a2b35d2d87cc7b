"""Run any ONNX face classifier the manifest describes: crop, normalise, read bona fide score.

Everything model-specific comes from `models.manifest.ClassifierSpec`, so a bank's own passive
anti-spoofing model runs through the same three functions with no code change. The ensemble
score is the plain mean of the members' bona fide probabilities.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.manifest import ClassifierSpec


def square_box(box: tuple[float, float, float, float], expand: float) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the face box made square and grown by `expand`."""
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * expand


def crop(
    frame: np.ndarray, box: tuple[float, float, float, float], spec: ClassifierSpec
) -> np.ndarray:
    """The expanded square face crop resized to the model's input size (RGB uint8).

    Parts outside the frame are filled by replicating the border, as a wider camera would
    have seen roughly the same surroundings; area resampling keeps texture cues unaliased.
    """
    cx, cy, side = square_box(box, spec.box_expand)
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    n = max(1, round(side))
    fh, fw = frame.shape[:2]
    pad = (max(0, -y0), max(0, y0 + n - fh), max(0, -x0), max(0, x0 + n - fw))
    region = frame[max(0, y0) : min(fh, y0 + n), max(0, x0) : min(fw, x0 + n)]
    if any(pad):
        region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_REPLICATE)
    h, w = spec.input_size
    interp = cv2.INTER_AREA if n > max(h, w) else cv2.INTER_LINEAR
    return cv2.resize(region, (w, h), interpolation=interp)


def to_input(face: np.ndarray, spec: ClassifierSpec) -> np.ndarray:
    """RGB uint8 crop → the float32 batch the model expects."""
    x = face[..., ::-1] if spec.channel_order == "BGR" else face
    x = (x.astype(np.float32) * spec.scale - np.float32(spec.mean)) / np.float32(spec.std)
    if spec.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], dtype=np.float32)


def probabilities(output: np.ndarray, spec: ClassifierSpec) -> np.ndarray:
    """The model's raw output vector after its activation (not clipped: the health check
    refuses a model whose "probabilities" leave 0-1)."""
    v = output.reshape(-1).astype(np.float64)
    if spec.activation == "softmax":
        e = np.exp(v - v.max())
        v = e / e.sum()
    elif spec.activation == "sigmoid":
        v = 1.0 / (1.0 + np.exp(-np.clip(v, -80, 80)))
    return v


def bona_fide(output: np.ndarray, spec: ClassifierSpec) -> float:
    """The bona fide probability from the model's raw output vector."""
    return float(np.clip(probabilities(output, spec)[spec.bona_fide_index], 0.0, 1.0))


def ensemble(scores: list[float]) -> float | None:
    """Mean bona fide probability of the ensemble members; None without members."""
    return float(np.mean(scores)) if scores else None
