"""One frame through the models: quality gates, face detection, passive scores, landmarks.

`analyze(models, frame)` is synchronous and CPU-bound (about 6 ms on one core); the session
adapter calls it through `asyncio.to_thread`. It returns measures, reason codes and the
landmarks (which the session feeds to `planarity` and drops at once): the face crop lives in
local variables and is gone when the call returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.vision import blazeface, classifier, facemesh
from edge.vision.errors import BadFrame
from edge.vision.runtime import ModelSet, OnnxModel
from models.manifest import ClassifierSpec


@dataclass(frozen=True)
class Gates:
    """Frame quality limits; a frame that fails one is not scored."""

    min_luma: float = 40.0  # mean Y (0-255) below this is too dark to judge texture
    min_face_px: float = 64.0  # face box width in frame pixels
    max_faces: int = 1  # a second face (a helper, a coercer) sends the session to review


@dataclass(frozen=True)
class FrameAnalysis:
    """What one frame told us; reasons are codes from `verdict.REASONS`."""

    faces: int
    reasons: tuple[str, ...]
    face: blazeface.Face | None = None
    passive: float | None = None  # ensemble bona fide probability, 0-1
    member_scores: tuple[float, ...] = field(default=())
    measures: facemesh.Measures | None = None
    points: np.ndarray | None = field(default=None, repr=False)  # 468×2 landmarks, frame px

    @property
    def usable(self) -> bool:
        return not self.reasons


def check_frame(frame: np.ndarray) -> None:
    if not (
        isinstance(frame, np.ndarray)
        and frame.dtype == np.uint8
        and frame.ndim == 3
        and frame.shape[2] == 3
        and min(frame.shape[:2]) >= 16
    ):
        raise BadFrame(f"expected an H×W×3 uint8 RGB frame, got {getattr(frame, 'shape', '?')}")


def mean_luma(frame: np.ndarray) -> float:
    # Subsample: brightness needs no full-resolution pass.
    small = frame[::4, ::4].astype(np.float32)
    return float((small @ np.float32([0.299, 0.587, 0.114])).mean())


def detect(models: ModelSet, frame: np.ndarray) -> list[blazeface.Face]:
    x, lb = blazeface.preprocess(frame)
    out = models.detector.run(x)
    return blazeface.decode(out["regressors"], out["classificators"], lb)


def landmarks(
    models: ModelSet, frame: np.ndarray, face: blazeface.Face
) -> tuple[facemesh.Measures, np.ndarray]:
    """The challenge's measures and the 468 landmarks in frame pixels (for planarity)."""
    x, m = facemesh.preprocess(frame, face)
    out = models.landmarks.run(x)
    mesh, presence = facemesh.decode(*out.values())
    return facemesh.measure(mesh, presence), facemesh.to_frame(mesh, m)


def passive_output(
    model: OnnxModel, frame: np.ndarray, face: blazeface.Face
) -> tuple[np.ndarray, ClassifierSpec]:
    """One passive classifier's raw output on the face crop its manifest entry asks for."""
    spec = model.entry.classifier
    assert spec is not None  # the manifest refuses a passive entry without one
    out = model.run(classifier.to_input(classifier.crop(frame, face.box, spec), spec))
    return (out[spec.output_name] if spec.output_name else next(iter(out.values()))), spec


def passive_scores(models: ModelSet, frame: np.ndarray, face: blazeface.Face) -> list[float]:
    return [classifier.bona_fide(*passive_output(m, frame, face)) for m in models.passive]


def analyze(
    models: ModelSet, frame: np.ndarray, gates: Gates = Gates(), with_landmarks: bool = True
) -> FrameAnalysis:
    """Gate, detect, score and measure one RGB frame."""
    check_frame(frame)
    if mean_luma(frame) < gates.min_luma:
        return FrameAnalysis(faces=0, reasons=("TOO_DARK",))
    faces = detect(models, frame)
    if not faces:
        return FrameAnalysis(faces=0, reasons=("NO_FACE",))
    if len(faces) > gates.max_faces:
        return FrameAnalysis(faces=len(faces), reasons=("MULTIPLE_FACES",), face=faces[0])
    face = faces[0]
    if face.width < gates.min_face_px:
        return FrameAnalysis(faces=1, reasons=("FACE_TOO_SMALL",), face=face)
    members = passive_scores(models, frame, face)
    measures, points = landmarks(models, frame, face) if with_landmarks else (None, None)
    return FrameAnalysis(
        faces=1,
        reasons=(),
        face=face,
        passive=classifier.ensemble(members),
        member_scores=tuple(members),
        measures=measures,
        points=points,
    )
