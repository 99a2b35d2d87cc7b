"""Face match (人证比对): the live face on the terminal against the ID-card photo, 1:1.

    matcher = FaceMatcher.load(detector)              # verified models from models/face_match.json
    report = matcher.compare(live_rgb, id_photo_rgb, threshold=0.6)
    id_face = matcher.id_embedding(id_photo_rgb)      # once per card read, in memory only
    report = matcher.compare_embedding(live_rgb, id_face, threshold=0.6)
    report.distance, report.matched, report.models    # all that leaves the terminal

The default embedder is dlib's ResNet face-recognition network with its 5-point aligner (both
from the `face-recognition-models` package, CC0), run by dlib; the face box comes from the
terminal's own detector (BlazeFace). Each model file is named in a manifest entry with its
SHA-256 and signature, verified before use and handed to dlib from the verified bytes (a
private temporary copy), so a file changed on disk never runs. A bank replaces them by
publishing other signed entries with the same roles.

`match` is pure. Embeddings and images stay in memory: no log line, repr or report carries
them. The pass threshold belongs to the business (the catalogue, a later round): callers pass
it. Blocking (~0.1 s of one core per face): the call's adapter runs it through
`asyncio.to_thread`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.vision import blazeface
from edge.vision.errors import VisionError
from edge.vision.runtime import OnnxModel
from models.errors import ModelRefused
from models.manifest import ModelEntry
from models.registry import FACE_MATCH_MANIFEST, VerifiedModel, load_verified, read_manifest
from models.signing import TrustedKeys

log = logging.getLogger(__name__)

#: dlib's own recommendation for this network: same person below 0.6 (LFW-tuned).
DEFAULT_THRESHOLD = 0.6


class NoFace(VisionError):
    """An image for the face match holds no face (or more than one, for the live frame)."""


@dataclass(frozen=True)
class MatchResult:
    """Distance between two embeddings and the verdict at `threshold` (smaller = closer)."""

    distance: float
    threshold: float
    matched: bool

    @property
    def score(self) -> float:
        """0..1, 1 for identical embeddings, 0.5 exactly at the threshold."""
        return float(max(0.0, 1.0 - self.distance / (2 * self.threshold)))


def match(a: np.ndarray, b: np.ndarray, threshold: float) -> MatchResult:
    """Euclidean distance of two embeddings; a match when it is below `threshold`."""
    if threshold <= 0:
        raise ValueError("threshold must be positive")
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"embeddings must be equal 1-D vectors, got {a.shape} and {b.shape}")
    distance = float(np.linalg.norm(a.astype(np.float64) - b.astype(np.float64)))
    return MatchResult(round(distance, 4), threshold, distance < threshold)


@dataclass(frozen=True)
class FaceMatchReport:
    """What leaves the terminal: scores, model versions and hashes; no image, no embedding."""

    distance: float
    score: float
    threshold: float
    matched: bool
    models: dict[str, str]  # name@version -> sha256

    def to_dict(self) -> dict[str, Any]:
        return {
            "distance": self.distance,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "matched": self.matched,
            "models": dict(self.models),
        }


def _dlib_load(verified: VerifiedModel) -> Any:
    """Hand verified bytes to dlib (which only reads paths) through a private temporary file."""
    import dlib  # type: ignore[import-untyped]

    loaders = {
        "face_aligner": dlib.shape_predictor,
        "face_embedder": dlib.face_recognition_model_v1,
    }
    with tempfile.TemporaryDirectory(prefix="cuntong-model-") as tmp:
        path = Path(tmp) / verified.entry.file
        path.write_bytes(verified.data)
        try:
            return loaders[verified.entry.role](str(path))
        except RuntimeError as err:  # dlib's deserialisation errors
            raise ModelRefused(f"model {verified.entry.label} does not load: {err}") from err


@dataclass
class FaceEmbedder:
    """The aligner and the embedding network of one verified manifest."""

    aligner_entry: ModelEntry
    embedder_entry: ModelEntry
    aligner: Any = field(repr=False)
    embedder: Any = field(repr=False)

    @classmethod
    def load(
        cls, manifest_path: Path = FACE_MATCH_MANIFEST, trusted: TrustedKeys | None = None
    ) -> FaceEmbedder:
        manifest = read_manifest(manifest_path)
        trusted = trusted or TrustedKeys.from_dir()
        models = {}
        for role in ("face_aligner", "face_embedder"):
            entry = manifest.by_role(role)
            if entry.runtime != "dlib":
                raise ModelRefused(f"model {entry.label}: only dlib face-match models run here")
            models[role] = _dlib_load(load_verified(entry.name, manifest_path, trusted))
        return cls(
            manifest.by_role("face_aligner"),
            manifest.by_role("face_embedder"),
            models["face_aligner"],
            models["face_embedder"],
        )

    @property
    def models(self) -> dict[str, str]:
        return {e.label: e.sha256 for e in (self.aligner_entry, self.embedder_entry)}

    def embed(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """128-D embedding of the face in `box` (x0, y0, x1, y1) of an RGB uint8 image."""
        import dlib  # type: ignore[import-untyped]

        x0, y0, x1, y1 = (round(v) for v in box)
        shape = self.aligner(rgb, dlib.rectangle(x0, y0, x1, y1))
        return np.asarray(self.embedder.compute_face_descriptor(rgb, shape), dtype=np.float32)


@dataclass
class FaceMatcher:
    """Detector + embedder: finds the one face in each image and compares them."""

    detector: OnnxModel
    embedder: FaceEmbedder

    @classmethod
    def load(
        cls,
        detector: OnnxModel,
        manifest_path: Path = FACE_MATCH_MANIFEST,
        trusted: TrustedKeys | None = None,
    ) -> FaceMatcher:
        return cls(detector, FaceEmbedder.load(manifest_path, trusted))

    @property
    def models(self) -> dict[str, str]:
        return {self.detector.entry.label: self.detector.entry.sha256, **self.embedder.models}

    def face_embedding(self, rgb: np.ndarray, what: str) -> np.ndarray:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise NoFace(f"{what} is not an H×W×3 uint8 RGB image")
        x, lb = blazeface.preprocess(rgb)
        out = self.detector.run(x)
        faces = blazeface.decode(out["regressors"], out["classificators"], lb)
        if len(faces) != 1:
            raise NoFace(f"{what}: {len(faces)} faces found, need exactly one")
        return self.embedder.embed(rgb, faces[0].box)

    def id_embedding(self, id_photo: np.ndarray) -> np.ndarray:
        """The ID photo's face embedding, to compute once per card read (it is most of the
        cost of a match, with the live frame's): kept in memory by the caller, never stored."""
        return self.face_embedding(id_photo, "ID photo")

    def compare(self, live: np.ndarray, id_photo: np.ndarray, threshold: float) -> FaceMatchReport:
        """Match the live frame's face against the ID photo's at the caller's threshold."""
        return self.compare_embedding(live, self.id_embedding(id_photo), threshold)

    def compare_embedding(
        self, live: np.ndarray, id_embedding: np.ndarray, threshold: float
    ) -> FaceMatchReport:
        """Match the live frame's face against an ID photo's embedding (``id_embedding``)."""
        result = match(self.face_embedding(live, "live frame"), id_embedding, threshold)
        report = FaceMatchReport(
            result.distance, result.score, threshold, result.matched, self.models
        )
        log.info(
            "face match: distance %.3f at %.2f -> %s", result.distance, threshold, result.matched
        )
        return report
