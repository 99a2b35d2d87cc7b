"""The ``face_match`` step (人证比对): the live camera frame against the photo of the ID card
read in this session, with the face-match model of the ``models/face_match.json`` slot.

Only the report leaves the terminal (distance, score, the threshold, model versions and
hashes): never the frame, the photo or an embedding. The desk's ``params.threshold`` is the
business's catalogue threshold on a 0-100 similarity, ``100 × (1 − distance / 1.2)``; 50 is
dlib's own 0.6 distance.

The ID photo's face (detection + embedding, about half the cost of a match) is computed once,
when the ``id_card_read`` step passes (``IdFaces.prepare``, in the background so the read
answers at once), and every face match of the call then embeds only the live frame. That
embedding lives in memory for the call only: never stored, logged or sent, and dropped at
call end (``IdFaces.clear``) and when the next customer's card is read.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import cv2
import numpy as np

from common.wire.call import StepRequest
from edge.steps.sign import Done
from edge.vision.facematch import FaceMatchReport, NoFace

DEFAULT_SIMILARITY = 50.0


class Matcher(Protocol):
    def id_embedding(self, id_photo: np.ndarray) -> np.ndarray: ...

    def compare_embedding(
        self, live: np.ndarray, id_embedding: np.ndarray, threshold: float
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


def _settle(task: asyncio.Future[np.ndarray]) -> None:
    """Collect a dropped task's outcome, so a failure nobody waits for is not logged."""
    if not task.cancelled():
        task.exception()


class IdFaces:
    """The face embedding of the ID photo read for this call, keyed by the photo's SHA-256
    (the read's own ``photo_sha256``), so a photo read before queueing (先刷身份证) is found
    as one read in the session. In memory only; ``clear`` drops it."""

    def __init__(self, matcher: Callable[[], Awaitable[Matcher]]) -> None:
        self.matcher = matcher
        self._faces: dict[str, asyncio.Future[np.ndarray]] = {}

    def __len__(self) -> int:
        """How many ID faces are held (0 after ``clear``)."""
        return len(self._faces)

    def prepare(self, photo: bytes) -> None:
        """Start embedding a passed read's photo; the customer before is dropped first."""
        self.clear()
        self._faces[hashlib.sha256(photo).hexdigest()] = asyncio.ensure_future(self._embed(photo))

    def clear(self) -> None:
        """The customer is gone: drop every ID face (a computation under way is abandoned)."""
        faces, self._faces = self._faces, {}
        for task in faces.values():
            task.cancel()
            task.add_done_callback(_settle)

    async def _embed(self, photo: bytes) -> np.ndarray:
        matcher = await self.matcher()
        return await asyncio.to_thread(matcher.id_embedding, decode_rgb(photo))

    async def embedding(self, photo: bytes) -> np.ndarray:
        """The photo's embedding: the one prepared at the read, else computed now and kept.
        NoFace when the photo has no single face (not kept: the next match tries again)."""
        key = hashlib.sha256(photo).hexdigest()
        task = self._faces.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
            task = self._faces[key] = asyncio.ensure_future(self._embed(photo))
        try:
            return await asyncio.shield(task)  # a cancelled step leaves the shared work alone
        except NoFace:
            if self._faces.get(key) is task:
                del self._faces[key]
            raise


class FaceMatchStep:
    """``photo(session)``: the decoded ID photo read in that session (``IdCardStep.photos``);
    ``frame()``: one live RGB frame from the terminal camera; ``matcher()``: the loaded model;
    ``id_faces``: the ID photos' embeddings (wire ``IdCardStep.on_photo`` to
    ``id_faces.prepare`` and the call's end to ``id_faces.clear``)."""

    def __init__(
        self,
        matcher: Callable[[], Awaitable[Matcher]],
        photo: Callable[[str], bytes | None],
        frame: Callable[[], Awaitable[np.ndarray]],
        id_faces: IdFaces | None = None,
    ) -> None:
        self.matcher = matcher
        self.photo = photo
        self.frame = frame
        self.id_faces = id_faces if id_faces is not None else IdFaces(matcher)

    async def __call__(self, request: StepRequest) -> Done:
        photo = self.photo(request.session)
        if photo is None:
            return Done("failed", "no ID photo read in this session: read the ID card first")
        similarity = float(request.params.get("threshold", DEFAULT_SIMILARITY))
        threshold = distance_for(similarity)
        matcher = await self.matcher()
        try:
            id_face = await self.id_faces.embedding(photo)
            live = await self.frame()
            report = await asyncio.to_thread(matcher.compare_embedding, live, id_face, threshold)
        except NoFace as err:
            return Done("failed", str(err))
        return report_result(report, similarity)
