"""MediaPipe face mesh (468 landmarks) pre- and post-processing, and the face measures the
active challenge reads: eye aspect ratio (blink), mouth aspect ratio (open mouth), head yaw.

The crop follows MediaPipe's face landmark graph: the detector box is made square, grown 1.5×
and rotated so the eyes are level, then warped to 192×192 RGB in [0, 1]. Measures are taken in
that upright crop (ratios do not depend on face size or in-plane tilt); landmarks are mapped
back to frame pixels for callers that need them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.blazeface import Face

SIZE = 192
GROW = 1.5
# Mesh indices: eye corners and lids (p1..p6 of the EAR formula), inner lips, cheeks.
RIGHT_EYE = (33, 160, 158, 133, 153, 144)
LEFT_EYE = (362, 385, 387, 263, 373, 380)
MOUTH_UPPER, MOUTH_LOWER, MOUTH_LEFT, MOUTH_RIGHT = 13, 14, 78, 308
CHEEK_RIGHT, CHEEK_LEFT, NOSE_TIP = 234, 454, 1


@dataclass(frozen=True)
class Measures:
    """What the active challenge reads from one frame."""

    ear: float  # eye aspect ratio, mean of both eyes (open ≈ 0.25-0.35, closed < 0.15)
    mar: float  # inner-lip opening over mouth width (closed ≈ 0, open > 0.35)
    yaw: float  # degrees (from the nose's place between the cheeks), + = nose to image right
    presence: float  # the model's face-presence probability


def crop_transform(face: Face) -> np.ndarray:
    """2×3 affine matrix taking frame pixels to the upright 192×192 crop."""
    right_eye, left_eye = face.keypoints[0], face.keypoints[1]
    dx, dy = left_eye - right_eye
    angle = math.degrees(math.atan2(dy, dx))
    cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
    side = max(face.width, face.height) * GROW
    m = cv2.getRotationMatrix2D((cx, cy), angle, SIZE / side)
    m[:, 2] += (SIZE / 2 - cx, SIZE / 2 - cy)
    return m


def preprocess(frame: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
    """(1×3×192×192 float32 input in [0, 1], affine used) for the face in the RGB frame."""
    m = crop_transform(face)
    crop = cv2.warpAffine(frame, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR)
    return crop.astype(np.float32).transpose(2, 0, 1)[None] / 255.0, m


def decode(points: np.ndarray, presence_logit: np.ndarray) -> tuple[np.ndarray, float]:
    """Model outputs → (468×3 landmarks in crop pixels, face presence probability)."""
    mesh = points.reshape(468, 3)
    presence = 1.0 / (1.0 + math.exp(-float(np.clip(presence_logit.reshape(-1)[0], -80, 80))))
    return mesh, presence


def to_frame(mesh: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Landmark x, y from crop pixels back to frame pixels."""
    inv = cv2.invertAffineTransform(m)
    return mesh[:, :2] @ inv[:, :2].T + inv[:, 2]


def _ear(mesh: np.ndarray, idx: tuple[int, ...]) -> float:
    p = mesh[list(idx), :2]
    vertical = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
    return float(vertical / (2 * np.linalg.norm(p[0] - p[3]) + 1e-6))


def measure(mesh: np.ndarray, presence: float) -> Measures:
    """EAR, MAR and yaw from crop-space landmarks."""
    ear = (_ear(mesh, RIGHT_EYE) + _ear(mesh, LEFT_EYE)) / 2
    opening = np.linalg.norm(mesh[MOUTH_UPPER, :2] - mesh[MOUTH_LOWER, :2])
    width = np.linalg.norm(mesh[MOUTH_LEFT, :2] - mesh[MOUTH_RIGHT, :2]) + 1e-6
    # Yaw from where the nose tip sits between the cheeks in the image (0.5 = frontal): a
    # geometric reading of what the camera saw, rather than the mesh's learned depth prior.
    span = mesh[CHEEK_LEFT, 0] - mesh[CHEEK_RIGHT, 0]
    r = (mesh[NOSE_TIP, 0] - mesh[CHEEK_RIGHT, 0]) / (span if abs(span) > 1e-6 else 1e-6)
    yaw = math.degrees(math.asin(float(np.clip(2 * r - 1, -1.0, 1.0))))
    return Measures(ear=ear, mar=float(opening / width), yaw=yaw, presence=presence)
