"""A mean 3D face shape for the rendered bona fide heads, made from other faces.

    python -m modeltools.eval.mean_shape [--out FILE] [--check]
    cuntong models mean-shape [--check]

MediaPipe's published canonical face model (`canonical_face_model.obj`) is in no package or
wheel available here and nothing is downloaded, so the rendered 3D heads need a geometry the
project can make itself. This is it: the shipped face mesh reads the 468 landmarks (with its
depth estimate) of every near-frontal face among the first 100 images of scikit-image's
`lfw_subset` (|yaw| < 12°, presence > 0.9); each reading is centred, scaled to unit RMS
radius and rotated onto the others (generalised Procrustes: rotation and scale, no
reflection), and the aligned readings are averaged. It is a mean of the mesh model's
estimates of *other* faces, not MediaPipe's canonical model and not a scan.

Leave-out: the faces are split by LFW index into two folds (even, odd) and each fold has its
own mean. A face is rendered on the mean of the fold it is *not* in (`shape_for`), so no head
is ever drawn on a shape that averaged that face's own reading. (The subset carries no
identity labels, so one person photographed twice could sit in both folds; the astronaut the
old passive baseline was trained on is not among the faces.)

The file (`mean_face_shape.json`, beside this module) records the selection, the face mesh
model's SHA-256 and each fold's faces; `--check` rebuilds it from the shipped models and
fails if any coordinate moved by more than 1e-3 (RMS radius 1).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from edge.vision import facemesh, pipeline
from edge.vision.runtime import ModelSet

PATH = Path(__file__).with_name("mean_face_shape.json")
IMAGES = 100  # lfw_subset's first 100 images are faces, the rest are not
MAX_YAW = 12.0
MIN_PRESENCE = 0.9
TOLERANCE = 1e-3
ITERATIONS = 10


@dataclass(frozen=True, eq=False)
class MeanShape:
    """One fold's mean: 468×3 points (x right, y down, z away from the camera; RMS radius
    1, centred) and the LFW indices it was averaged from."""

    points: np.ndarray
    faces: frozenset[int]


def reading(models: ModelSet, image: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """(468×3 landmarks in frame px with depth, yaw, presence) of the one face, or None."""
    faces = pipeline.detect(models, image)
    if len(faces) != 1:
        return None
    x, m = facemesh.preprocess(image, faces[0])
    mesh, presence = facemesh.decode(*models.landmarks.run(x).values())
    scale = math.hypot(m[0, 0], m[0, 1])  # crop px per frame px
    points = np.column_stack([facemesh.to_frame(mesh, m), mesh[:, 2] / scale])
    return points, facemesh.measure(mesh, presence).yaw, presence


def normalise(points: np.ndarray) -> np.ndarray:
    """Centred, RMS radius 1."""
    p = points - points.mean(0)
    return p / math.sqrt((p**2).sum(1).mean())


def rotate_onto(p: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """`p` rotated (proper rotation, Kabsch) to best fit `ref`; both centred."""
    u, _, vt = np.linalg.svd(p.T @ ref)
    d = np.sign(np.linalg.det(u @ vt))
    return p @ (u @ np.diag([1.0, 1.0, d]) @ vt)


def procrustes_mean(shapes: list[np.ndarray]) -> np.ndarray:
    """Generalised Procrustes mean, kept in the raw readings' mean pose (near frontal)."""
    shapes = [normalise(s) for s in shapes]
    start = normalise(np.mean(shapes, 0))
    mean = start
    for _ in range(ITERATIONS):
        mean = normalise(np.mean([rotate_onto(s, mean) for s in shapes], 0))
    return normalise(rotate_onto(mean, start))


def build(models: ModelSet) -> dict[str, object]:
    """The file's content, from the shipped models and the installed scikit-image."""
    from modeltools.eval.planarity import lfw_frame  # the same frames the benchmark renders

    readings: dict[int, np.ndarray] = {}
    for i in range(IMAGES):
        r = reading(models, lfw_frame(i))
        if r is not None and abs(r[1]) < MAX_YAW and r[2] > MIN_PRESENCE:
            readings[i] = r[0]
    folds = []
    for parity in (0, 1):
        faces = sorted(i for i in readings if i % 2 == parity)
        mean = procrustes_mean([readings[i] for i in faces])
        folds.append({"lfw_indices": faces, "points": np.round(mean, 4).tolist()})
    return {
        "what": "mean of the shipped face mesh's 3D readings of other LFW faces, per fold "
        "(not MediaPipe's canonical_face_model.obj); regenerate: "
        "python -m modeltools.eval.mean_shape",
        "source": f"skimage.data.lfw_subset()[0:{IMAGES}], upscaled as "
        "modeltools.eval.planarity.lfw_frame",
        "selection": {"max_abs_yaw_deg": MAX_YAW, "min_presence": MIN_PRESENCE},
        "alignment": f"generalised Procrustes (rotation, scale), {ITERATIONS} iterations; "
        "centred, RMS radius 1; x right, y down, z away from the camera",
        "face_mesh_sha256": models.landmarks.entry.sha256,
        "folds": folds,
    }


@cache
def load(path: Path = PATH) -> tuple[MeanShape, ...]:
    doc = json.loads(path.read_text())
    out = []
    for k, fold in enumerate(doc["folds"]):
        points = np.array(fold["points"], dtype=np.float64)
        if points.shape != (468, 3):
            raise ValueError(f"{path}: fold {k} has points of shape {points.shape}, not 468×3")
        out.append(MeanShape(points, frozenset(fold["lfw_indices"])))
    return tuple(out)


def shape_for(lfw_index: int | None) -> MeanShape:
    """The mean shape that did not average this LFW face (any, for a face outside LFW)."""
    for shape in load():
        if lfw_index not in shape.faces:
            return shape
    raise ValueError(f"LFW face {lfw_index} is in every fold: no mean shape leaves it out")


def check(models: ModelSet, path: Path = PATH) -> float:
    """Largest coordinate difference between the stored file and a rebuild."""
    stored = json.loads(path.read_text())
    fresh = build(models)
    if stored["face_mesh_sha256"] != fresh["face_mesh_sha256"]:
        raise ValueError(f"{path} was made with another face mesh model")
    worst = 0.0
    for a, b in zip(stored["folds"], fresh["folds"], strict=True):
        if a["lfw_indices"] != b["lfw_indices"]:
            got, want = a["lfw_indices"], b["lfw_indices"]
            raise ValueError(f"{path}: a fold's faces differ: {got} stored, {want} rebuilt")
        worst = max(worst, float(np.abs(np.array(a["points"]) - np.array(b["points"])).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=PATH)
    ap.add_argument("--check", action="store_true", help="rebuild and compare with --out")
    args = ap.parse_args(argv)
    models = ModelSet.load()
    if args.check:
        worst = check(models, args.out)
        print(f"largest difference {worst:.5f} (tolerance {TOLERANCE})")
        if worst > TOLERANCE:
            raise SystemExit(f"{args.out} does not match a rebuild from the shipped models")
        return 0
    doc = build(models)
    args.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    sizes = ", ".join(str(len(f["lfw_indices"])) for f in doc["folds"])  # type: ignore[attr-defined]
    print(f"wrote {args.out} (faces per fold: {sizes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
