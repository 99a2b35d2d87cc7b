"""Face-aware compression on the outgoing call video (``edge.vision.roi``), when it can run.

The detector's face box drives ``roi.BackgroundSmoother``: the face stays pixel-exact, the
background is low-passed and averaged over time, so VP8 spends a thin link's bits where the
teller looks. Detection runs every ``detect_every`` frames (a face moves little in 200 ms)
and, like all onnxruntime work, on a worker thread. Without verified vision models on the
terminal, ``load`` returns None and the call sends plain frames.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from edge.vision.roi import BackgroundSmoother, Box
    from edge.vision.runtime import ModelSet

log = logging.getLogger("cuntong.teller.faceaware")


class FaceAware:
    """An async frame preprocessor for ``sources.CameraTrack``."""

    def __init__(self, models: ModelSet, detect_every: int = 3) -> None:
        from edge.vision.roi import BackgroundSmoother

        self.models = models
        self.detect_every = detect_every
        self.smoother: BackgroundSmoother = BackgroundSmoother()
        self.box: Box | None = None
        self.frames = 0
        self.faces_seen = 0

    @classmethod
    async def load(
        cls, models: Callable[[], Awaitable[ModelSet]] | None = None, manifest: Path | None = None
    ) -> FaceAware | None:
        """With the terminal's verified models (``models``: the agent's liveness loader, so
        one set serves both; else the shipped ``manifest``); None (plain video) without."""
        from edge.vision.runtime import ModelSet
        from models.errors import ModelError
        from models.registry import DEFAULT_MANIFEST

        try:
            if models is not None:
                loaded = await models()
            else:
                loaded = await asyncio.to_thread(ModelSet.load, manifest or DEFAULT_MANIFEST)
        except (ModelError, OSError, ValueError) as err:
            log.info("face-aware video off: %s", err)
            return None
        return cls(loaded)

    def _process(self, frame: np.ndarray) -> np.ndarray:
        from edge.vision.pipeline import detect

        if self.frames % self.detect_every == 0:
            faces = detect(self.models, frame)
            self.box = faces[0].box if faces else None
            self.faces_seen += bool(faces)
        self.frames += 1
        return self.smoother(frame, self.box)

    async def __call__(self, frame: np.ndarray) -> np.ndarray:
        return await asyncio.to_thread(self._process, frame)
