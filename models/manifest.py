"""The model manifest: what each shipped model is, where it came from, and how to run it.

`models/manifest.json` lists every model the terminal may load. Each entry carries name,
version, role, file, SHA-256, licence, provenance and an Ed25519 signature over the entry's
canonical JSON (every field but `signature`, keys sorted, no spaces). A passive classifier
entry also carries a `classifier` block that says everything needed to run any ONNX face
classifier without code changes, so a bank can drop in its own model:

    "classifier": {"input_size": [112, 112], "channel_order": "RGB", "layout": "NCHW",
                   "scale": 0.00392156862745098, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                   "box_expand": 1.5, "activation": "softmax", "bona_fide_index": 1}

`passive_ensemble` names the passive classifiers whose bona fide scores are averaged.
A model may live in an installed Python package instead of `models/onnx/`: `"package":
"face_recognition_models/models"` names the import name and the folder inside it, and `file`
the bare file name there; `"runtime": "dlib"` says dlib, not onnxruntime, runs it. Both fields
are left out of the signed bytes when they have their defaults, so older signatures hold.

Pure code: parsing and canonical bytes only; file and signature checks live in `registry`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from models.errors import ManifestError

FORMAT = 1
ROLES = ("face_detector", "face_landmarks", "passive_classifier", "face_aligner", "face_embedder")
#: How a model file is run: onnxruntime, or dlib (the face-match default, docs/vision.md)
RUNTIMES = ("onnx", "dlib")
CHANNEL_ORDERS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")
ACTIVATIONS = ("softmax", "sigmoid", "none")
# square_replicate: the box made square from its longer side × box_expand, about its centre,
#   border pixels replicated where it leaves the frame (the default, the shipped baseline's).
# scaled_shifted: the box itself (not squared) × box_expand, the factor capped so the crop
#   fits in the frame, the crop shifted inside the frame rather than padded, then stretched
#   to input_size (as many public anti-spoofing models were trained).
CROPS = ("square_replicate", "scaled_shifted")
# area: area averaging when shrinking, bilinear when enlarging (the default); bilinear and
#   nearest: OpenCV's INTER_LINEAR and INTER_NEAREST either way.
INTERPOLATIONS = ("area", "bilinear", "nearest")


@dataclass(frozen=True)
class ClassifierSpec:
    """How to feed a face crop to an ONNX classifier and read its bona fide score.

    Pixels (0-255) are multiplied by `scale`, then `(x - mean) / std` per channel in
    `channel_order`. The crop is the detector's face box grown about its centre by
    `box_expand` (1.0 = the box itself), cut as `crop` says (`CROPS`) and resized to
    `input_size` (h, w) with `interpolation` (`INTERPOLATIONS`).
    `activation` turns the output vector into probabilities ("none" = already are);
    `bona_fide_index` picks the bona fide entry (for a single sigmoid output use 0).
    """

    input_size: tuple[int, int]
    channel_order: str = "RGB"
    layout: str = "NCHW"
    scale: float = 1 / 255
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    box_expand: float = 1.0
    activation: str = "softmax"
    bona_fide_index: int = 1
    output_name: str | None = None
    crop: str = "square_replicate"
    interpolation: str = "area"

    def __post_init__(self) -> None:
        h, w = self.input_size
        _check(h > 0 and w > 0, "classifier.input_size must be positive")
        _check(self.channel_order in CHANNEL_ORDERS, f"classifier.channel_order: {CHANNEL_ORDERS}")
        _check(self.layout in LAYOUTS, f"classifier.layout must be one of {LAYOUTS}")
        _check(self.activation in ACTIVATIONS, f"classifier.activation: {ACTIVATIONS}")
        _check(len(self.mean) == 3 and len(self.std) == 3, "classifier.mean/std need 3 values")
        _check(all(s > 0 for s in self.std), "classifier.std must be positive")
        _check(self.box_expand >= 1.0, "classifier.box_expand must be >= 1.0")
        _check(self.bona_fide_index >= 0, "classifier.bona_fide_index must be >= 0")
        _check(self.crop in CROPS, f"classifier.crop must be one of {CROPS}")
        _check(self.interpolation in INTERPOLATIONS, f"classifier.interpolation: {INTERPOLATIONS}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClassifierSpec:
        try:
            return cls(
                input_size=(int(d["input_size"][0]), int(d["input_size"][1])),
                channel_order=str(d.get("channel_order", "RGB")),
                layout=str(d.get("layout", "NCHW")),
                scale=float(d.get("scale", 1 / 255)),
                mean=tuple(float(v) for v in d.get("mean", (0.0, 0.0, 0.0))),  # type: ignore[arg-type]
                std=tuple(float(v) for v in d.get("std", (1.0, 1.0, 1.0))),  # type: ignore[arg-type]
                box_expand=float(d.get("box_expand", 1.0)),
                activation=str(d.get("activation", "softmax")),
                bona_fide_index=int(d.get("bona_fide_index", 1)),
                output_name=d.get("output_name"),
                crop=str(d.get("crop", "square_replicate")),
                interpolation=str(d.get("interpolation", "area")),
            )
        except (KeyError, TypeError, IndexError, ValueError) as err:
            if isinstance(err, ManifestError):
                raise
            raise ManifestError(f"classifier block invalid: {err!r}") from err

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        # Fields left at their defaults stay out, so entries signed before they existed keep
        # the same canonical bytes (and signatures).
        if self.output_name is None:
            del d["output_name"]
        if self.crop == "square_replicate":
            del d["crop"]
        if self.interpolation == "area":
            del d["interpolation"]
        return d


@dataclass(frozen=True)
class Signature:
    """An Ed25519 signature (base64) by the key whose id is `key_id`."""

    key_id: str
    ed25519: str


@dataclass(frozen=True)
class ModelEntry:
    """One model file and everything the terminal needs to trust and run it."""

    name: str
    version: str
    role: str
    file: str
    sha256: str
    licence: str
    provenance: dict[str, Any]
    classifier: ClassifierSpec | None = None
    signature: Signature | None = None
    runtime: str = "onnx"
    package: str | None = None  # "import_name/sub/folder" holding `file`, else models/onnx/

    def __post_init__(self) -> None:
        _check(self.role in ROLES, f"{self.name}: role must be one of {ROLES}")
        _check(self.runtime in RUNTIMES, f"{self.name}: runtime must be one of {RUNTIMES}")
        if self.package is not None:
            parts = self.package.split("/")
            _check(
                all(p and p != ".." for p in parts) and parts[0].isidentifier(),
                f"{self.name}: package must be 'import_name[/folder...]'",
            )
        _check(
            len(self.sha256) == 64 and all(c in "0123456789abcdef" for c in self.sha256),
            f"{self.name}: sha256 must be 64 lower-case hex digits",
        )
        _check("/" not in self.file and ".." not in self.file, f"{self.name}: bare file name")
        if self.role == "passive_classifier":
            _check(self.classifier is not None, f"{self.name}: classifier block required")

    @property
    def label(self) -> str:
        """`name@version`, the form results and logs report."""
        return f"{self.name}@{self.version}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEntry:
        try:
            sig = d.get("signature")
            spec = d.get("classifier")
            return cls(
                name=str(d["name"]),
                version=str(d["version"]),
                role=str(d["role"]),
                file=str(d["file"]),
                sha256=str(d["sha256"]).lower(),
                licence=str(d["licence"]),
                provenance=dict(d["provenance"]),
                classifier=_spec(d, spec) if spec is not None else None,
                signature=Signature(str(sig["key_id"]), str(sig["ed25519"])) if sig else None,
                runtime=str(d.get("runtime", "onnx")),
                package=str(d["package"]) if d.get("package") is not None else None,
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, ManifestError):
                raise
            raise ManifestError(f"model entry {d.get('name', '?')!r}: {err!r}") from err

    def unsigned_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "role": self.role,
            "file": self.file,
            "sha256": self.sha256,
            "licence": self.licence,
            "provenance": self.provenance,
        }
        if self.classifier is not None:
            d["classifier"] = self.classifier.to_dict()
        if self.runtime != "onnx":
            d["runtime"] = self.runtime
        if self.package is not None:
            d["package"] = self.package
        return d

    def to_dict(self) -> dict[str, Any]:
        d = self.unsigned_dict()
        if self.signature is not None:
            d["signature"] = asdict(self.signature)
        return d

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers."""
        return canonical_json(self.unsigned_dict())


@dataclass(frozen=True)
class Manifest:
    """All models a terminal may load, and which passive classifiers form the ensemble."""

    models: tuple[ModelEntry, ...]
    passive_ensemble: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [m.name for m in self.models]
        _check(len(set(names)) == len(names), "model names must be unique")
        for name in self.passive_ensemble:
            entry = self.get(name)
            _check(entry.role == "passive_classifier", f"{name} is not a passive classifier")

    def get(self, name: str) -> ModelEntry:
        for m in self.models:
            if m.name == name:
                return m
        raise ManifestError(f"no model named {name!r} in the manifest")

    def by_role(self, role: str) -> ModelEntry:
        found = [m for m in self.models if m.role == role]
        _check(len(found) == 1, f"expected exactly one {role}, found {len(found)}")
        return found[0]

    def replace(self, entry: ModelEntry) -> Manifest:
        """A manifest with `entry` replacing the entry of the same name (or appended)."""
        models = [entry if m.name == entry.name else m for m in self.models]
        if entry.name not in [m.name for m in self.models]:
            models.append(entry)
        return Manifest(tuple(models), self.passive_ensemble)

    @classmethod
    def parse(cls, data: bytes | str) -> Manifest:
        try:
            d = json.loads(data)
        except ValueError as err:
            raise ManifestError(f"manifest is not JSON: {err}") from err
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ManifestError(f"manifest format must be {FORMAT}")
        models = tuple(ModelEntry.from_dict(m) for m in d.get("models", []))
        return cls(models, tuple(str(n) for n in d.get("passive_ensemble", [])))

    def to_bytes(self) -> bytes:
        d = {
            "format": FORMAT,
            "models": [m.to_dict() for m in self.models],
            "passive_ensemble": list(self.passive_ensemble),
        }
        return (json.dumps(d, indent=2, ensure_ascii=False) + "\n").encode()


def _spec(entry: dict[str, Any], block: Any) -> ClassifierSpec:
    """The classifier block; a refusal names the model it belongs to."""
    try:
        return ClassifierSpec.from_dict(block)
    except ManifestError as err:
        raise ManifestError(f"model {entry.get('name', '?')!r}: {err}") from err


def canonical_json(d: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same bytes on every machine."""
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ManifestError(message)
