"""The only door to onnxruntime: sessions built from verified model bytes, one CPU thread.

One intra-op thread keeps a terminal's second core free for video and the agent, and makes
per-frame latency predictable. Sessions are created from `models.registry.VerifiedModel`
bytes only, so no file that failed its SHA-256 or signature check ever reaches the runtime.
A classifier whose ONNX input shape contradicts its manifest `input_size` or `layout` is
refused at load (so at bundle build, with the health check, and at install), and every
refusal or run failure names the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edge.vision.classifier import check_input_shape
from models.bundle import Bundle
from models.errors import ModelRefused
from models.manifest import Manifest, ModelEntry
from models.registry import DEFAULT_MANIFEST, VerifiedModel, load_verified, read_manifest
from models.signing import TrustedKeys


@dataclass
class OnnxModel:
    """A verified model ready to run; `run` maps input arrays to named outputs."""

    entry: ModelEntry
    session: ort.InferenceSession = field(repr=False)

    @classmethod
    def from_verified(cls, verified: VerifiedModel, threads: int = 1) -> OnnxModel:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            session = ort.InferenceSession(verified.data, opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelRefused(f"model {verified.entry.label} does not load: {err}") from err
        spec = verified.entry.classifier
        if spec is not None:
            fault = check_input_shape(list(session.get_inputs()[0].shape), spec)
            if fault:
                raise ModelRefused(f"model {verified.entry.label}: {fault}")
        return cls(verified.entry, session)

    @property
    def input_name(self) -> str:
        return self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        try:
            outputs = self.session.run(None, {self.input_name: x})
        except Exception as err:  # onnxruntime raises its own untyped errors (shapes, types)
            raise ModelRefused(f"model {self.entry.label} does not run: {err}") from err
        return dict(zip(names, outputs, strict=True))


@dataclass
class ModelSet:
    """The detector, landmark model and passive ensemble a terminal runs."""

    detector: OnnxModel
    landmarks: OnnxModel
    passive: list[OnnxModel]

    @property
    def versions(self) -> dict[str, str]:
        models = [self.detector, self.landmarks, *self.passive]
        return {m.entry.name: m.entry.version for m in models}

    @classmethod
    def load(
        cls, manifest_path: Path = DEFAULT_MANIFEST, trusted: TrustedKeys | None = None
    ) -> ModelSet:
        """Verify and load every model the manifest names; refuse all if any one fails."""
        manifest: Manifest = read_manifest(manifest_path)
        trusted = trusted or TrustedKeys.from_dir()

        def load(entry: ModelEntry) -> OnnxModel:
            return OnnxModel.from_verified(load_verified(entry.name, manifest_path, trusted))

        return cls.build(manifest, load)

    @classmethod
    def from_bundle(cls, bundle: Bundle, trusted: TrustedKeys | None = None) -> ModelSet:
        """Verify and load a model bundle (an OTA payload) from memory; refuse all on any fault."""
        verified = {v.entry.name: v for v in bundle.verify(trusted or TrustedKeys.from_dir())}
        return cls.build(bundle.manifest, lambda e: OnnxModel.from_verified(verified[e.name]))

    @classmethod
    def build(cls, manifest: Manifest, load: Callable[[ModelEntry], OnnxModel]) -> ModelSet:
        """The detector, landmarks and ensemble that ``manifest`` names, each through ``load``."""
        return cls(
            detector=load(manifest.by_role("face_detector")),
            landmarks=load(manifest.by_role("face_landmarks")),
            passive=[load(manifest.get(n)) for n in manifest.passive_ensemble],
        )
