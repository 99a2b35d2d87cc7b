"""Health check of a model set before a terminal relies on it (after a model-bundle OTA).

A bundle whose signatures verify can still be useless: a model that onnxruntime will not
load, a classifier whose "probability" is 7 or NaN, a detector that finds no face, or a
model too slow for a terminal's core. `check_bundle` loads every model of a bundle and runs
the whole pipeline on a fixed built-in frame, and raises `models.errors.Unhealthy` naming
the model and the fault; the OTA then rolls the slot back.

The built-in frame (`health_face.jpg`, 224×224) is a crop of scikit-image's `astronaut`
photograph (Eileen Collins, NASA, public domain) with one frontal face about 76 px wide.
Synchronous and CPU-bound: the adapter calls it through `asyncio.to_thread`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.vision import classifier, pipeline
from edge.vision.blazeface import Face
from edge.vision.runtime import ModelSet, OnnxModel
from models.bundle import Bundle
from models.errors import Unhealthy
from models.signing import TrustedKeys

FRAME = Path(__file__).with_name("health_face.jpg")
TIMED_RUNS = 3


@dataclass(frozen=True)
class Budget:
    """Time limits on a terminal-class CPU core (the shipped set: ~0.3 s and ~8 ms)."""

    load_s: float = 10.0  # verify and load every model of the bundle
    frame_ms: float = 250.0  # one frame through detector, ensemble and landmarks


@dataclass(frozen=True)
class Report:
    """What a passed check measured."""

    load_s: float
    frame_ms: float
    passive: dict[str, float]  # bona fide probability per ensemble member on the frame


def health_frame() -> np.ndarray:
    """The built-in face frame as an RGB uint8 array."""
    bgr = cv2.imdecode(np.frombuffer(FRAME.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:  # the agent's own install is damaged: no bundle can be judged
        raise Unhealthy(f"the built-in health frame {FRAME} does not decode")
    return np.ascontiguousarray(bgr[..., ::-1])


def check_bundle(
    bundle: Bundle,
    trusted: TrustedKeys,
    budget: Budget = Budget(),
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[ModelSet, Report]:
    """Verify, load and exercise every model; the loaded set and what was measured."""
    started = clock()
    models = ModelSet.from_bundle(bundle, trusted)  # ModelRefused: signature, SHA, load
    load_s = clock() - started
    if load_s > budget.load_s:
        raise Unhealthy(f"loading the models took {load_s:.1f} s, over {budget.load_s} s")
    return models, check(models, budget, clock, load_s)


def check(
    models: ModelSet,
    budget: Budget = Budget(),
    clock: Callable[[], float] = time.perf_counter,
    load_s: float = 0.0,
) -> Report:
    """Run the pipeline on the built-in frame; Unhealthy names what is wrong."""
    frame = health_frame()
    result = _analyze(models, frame)  # warm-up: onnxruntime allocates on the first run
    times = []
    for _ in range(TIMED_RUNS):
        started = clock()
        _analyze(models, frame)
        times.append((clock() - started) * 1000)
    # The fastest run: a busy core (a video call, an update) slows some runs, never all,
    # while a model too heavy for the terminal is slow in every one.
    frame_ms = min(times)
    if result.faces != 1 or result.face is None:
        raise Unhealthy(
            f"detector {models.detector.entry.label} found {result.faces} faces in the "
            "built-in one-face frame"
        )
    if result.reasons:
        raise Unhealthy(f"the built-in frame fails the gates: {', '.join(result.reasons)}")
    passive = {m.entry.label: _score(m, frame, result.face) for m in models.passive}
    measures = result.measures
    if measures is None or not all(
        math.isfinite(v) for v in (measures.ear, measures.mar, measures.yaw)
    ):
        raise Unhealthy(f"landmarks {models.landmarks.entry.label} give no finite measures")
    if frame_ms > budget.frame_ms:
        raise Unhealthy(f"one frame took {frame_ms:.0f} ms, over the {budget.frame_ms} ms budget")
    return Report(load_s, frame_ms, passive)


def _analyze(models: ModelSet, frame: np.ndarray) -> pipeline.FrameAnalysis:
    try:
        return pipeline.analyze(models, frame)
    except Exception as err:  # onnxruntime raises its own untyped errors (shapes, types)
        raise Unhealthy(f"the models do not run on the built-in frame: {err}") from err


def _score(model: OnnxModel, frame: np.ndarray, face: Face) -> float:
    raw, spec = pipeline.passive_output(model, frame, face)
    probs = classifier.probabilities(raw, spec)
    if spec.bona_fide_index >= probs.size:
        raise Unhealthy(
            f"{model.entry.label}: bona_fide_index {spec.bona_fide_index} but the model "
            f"gives {probs.size} outputs"
        )
    score = float(probs[spec.bona_fide_index])
    if not 0.0 <= score <= 1.0:  # also false for NaN
        raise Unhealthy(f"{model.entry.label}: bona fide score {score} is not in 0-1")
    return score
