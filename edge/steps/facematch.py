"""The ``face_match`` step (人证比对): the live camera frame against the photo of the ID card
read in this session, with the face-match model of the ``models/face_match.json`` slot.

Only the report leaves the terminal (distance, score, the threshold, model versions and
hashes): never the frame, the photo or an embedding. The desk's ``params.threshold`` is the
business's catalogue threshold on a 0-100 similarity, ``100 × (1 − distance / 1.2)``; 50 is
dlib's own 0.6 distance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import cv2
import numpy as np

from common.wire.call import StepRequest
from edge.steps.sign import Done
from edge.vision.facematch import FaceMatchReport, NoFace

DEFAULT_SIMILARITY = 50.0


class Matcher(Protocol):
    def compare(
        self, live: np.ndarray, id_photo: np.ndarray, threshold: float
    ) -> FaceMatchReport: ...


def distance_for(similarity: float) -> float:
    """The embedding distance a 0-100 similarity threshold stands for."""
    if not 0 < similarity < 100:
        raise ValueError("the face-match threshold must be between 0 and 100")
    return 1.2 * (1 - similarity / 100)


def report_result(report: FaceMatchReport, similarity: float) -> Done:
    """Pure: a face-match report as the step's result (score on the catalogue's 0-100)."""
    data: dict[str, Any] = {
        "score": round(100 * report.score, 1),
        "threshold": similarity,
        "distance": report.distance,
        "matched": report.matched,
        "models": dict(report.models),
    }
    if report.matched:
        return Done("passed", "the live face matches the ID photo", data, data)
    return Done("failed", "the live face does not match the ID photo", data, data)


def decode_rgb(image: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise NoFace("the ID photo does not decode")
    return np.ascontiguousarray(bgr[:, :, ::-1])


class FaceMatchStep:
    """``photo(session)``: the decoded ID photo read in that session (``IdCardStep.photos``);
    ``frame()``: one live RGB frame from the terminal camera; ``matcher()``: the loaded model."""

    def __init__(
        self,
        matcher: Callable[[], Awaitable[Matcher]],
        photo: Callable[[str], bytes | None],
        frame: Callable[[], Awaitable[np.ndarray]],
    ) -> None:
        self.matcher = matcher
        self.photo = photo
        self.frame = frame

    async def __call__(self, request: StepRequest) -> Done:
        photo = self.photo(request.session)
        if photo is None:
            return Done("failed", "no ID photo read in this session: read the ID card first")
        similarity = float(request.params.get("threshold", DEFAULT_SIMILARITY))
        matcher = await self.matcher()
        live = await self.frame()
        try:
            report = await asyncio.to_thread(
                matcher.compare, live, decode_rgb(photo), distance_for(similarity)
            )
        except NoFace as err:
            return Done("failed", str(err))
        return report_result(report, similarity)
