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


INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def crop(
    frame: np.ndarray, box: tuple[float, float, float, float], spec: ClassifierSpec
) -> np.ndarray:
    """The face crop `spec.crop` describes, resized to the model's input size (RGB uint8)."""
    region = crop_region(frame, box, spec)
    h, w = spec.input_size
    if spec.interpolation == "area":
        # Area resampling keeps texture cues unaliased when shrinking; it is bilinear-like
        # when enlarging, so use bilinear there.
        shrink = max(region.shape[:2]) > max(h, w)
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        return cv2.resize(region, (w, h), interpolation=interp)
    return cv2.resize(region, (w, h), interpolation=INTERPOLATION[spec.interpolation])


def crop_box(
    frame_shape: tuple[int, ...], box: tuple[float, float, float, float], spec: ClassifierSpec
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the frame region the crop takes, x1/y1 exclusive; for
    square_replicate it may reach outside the frame (those pixels are replicated)."""
    fh, fw = frame_shape[:2]
    if spec.crop == "scaled_shifted":
        return _scaled_shifted(fw, fh, box, spec.box_expand)
    cx, cy, side = square_box(box, spec.box_expand)
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    n = max(1, round(side))
    return x0, y0, x0 + n, y0 + n


def _scaled_shifted(
    fw: int, fh: int, box: tuple[float, float, float, float], expand: float
) -> tuple[int, int, int, int]:
    """The box × `expand` (capped to fit the frame), moved inside the frame, not padded."""
    x0, y0, x1, y1 = box
    bw, bh = max(x1 - x0, 1e-6), max(y1 - y0, 1e-6)
    scale = min((fh - 1) / bh, (fw - 1) / bw, expand)
    w, h = bw * scale, bh * scale
    cx, cy = x0 + bw / 2, y0 + bh / 2
    left, top, right, bottom = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    if left < 0:
        right, left = right - left, 0.0
    if top < 0:
        bottom, top = bottom - top, 0.0
    if right > fw - 1:
        left, right = left - (right - fw + 1), fw - 1.0
    if bottom > fh - 1:
        top, bottom = top - (bottom - fh + 1), fh - 1.0
    return int(left), int(top), int(right) + 1, int(bottom) + 1


def crop_region(
    frame: np.ndarray, box: tuple[float, float, float, float], spec: ClassifierSpec
) -> np.ndarray:
    """The frame pixels of `crop_box`, border-replicated where it leaves the frame."""
    x0, y0, x1, y1 = crop_box(frame.shape, box, spec)
    fh, fw = frame.shape[:2]
    pad = (max(0, -y0), max(0, y1 - fh), max(0, -x0), max(0, x1 - fw))
    region = frame[max(0, y0) : min(fh, y1), max(0, x0) : min(fw, x1)]
    if any(pad):
        region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_REPLICATE)
    return region


def check_input_shape(shape: list[object], spec: ClassifierSpec) -> str | None:
    """What is wrong with an ONNX input `shape` for `spec` (None if it fits); dimensions
    the file leaves symbolic (names or None) fit anything."""
    if len(shape) != 4:
        return f"the ONNX input has {len(shape)} dimensions, not 4 ({spec.layout})"
    dims = shape[2:4] + shape[1:2] if spec.layout == "NCHW" else shape[1:4]
    want = (*spec.input_size, 3)
    for got, expected, what in zip(dims, want, ("height", "width", "channels"), strict=True):
        if isinstance(got, int) and got != expected:
            return (
                f"the ONNX input is {shape} ({spec.layout}) but the manifest says "
                f"input_size {list(spec.input_size)}: {what} {got} ≠ {expected}"
            )
    return None


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
