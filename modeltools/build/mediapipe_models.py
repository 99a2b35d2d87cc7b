"""Rebuild the face detector and face landmark ONNX models from the mediapipe wheel.

    python -m modeltools.build.mediapipe_models [--key PRIVATE.pem] [--cache DIR] [--check]

Fetches `mediapipe==0.10.21` (Apache-2.0) with `pip download --no-deps` (the wheel is read as
a zip, never installed), checks the wheel and each .tflite against pinned SHA-256 values,
converts them with `modeltools.build.tflite_onnx`, checks the ONNX outputs against the TFLite
interpreter from `ai-edge-litert` when it is installed, and writes `models/onnx/*.onnx` plus
their manifest entries. The converter is deterministic, so a rebuild gives byte-identical files
and the committed signatures stay valid.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from models.manifest import ModelEntry
from modeltools.build.common import check_reproduced, publish
from modeltools.build.tflite_onnx import convert

MEDIAPIPE = "0.10.21"
WHEEL = f"mediapipe-{MEDIAPIPE}-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"

# name, version, role, member in the wheel, its SHA-256, output file
MODELS = (
    (
        "blazeface-short-range",
        f"{MEDIAPIPE}+onnx.1",
        "face_detector",
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        "blazeface_short_range.onnx",
    ),
    (
        "face-mesh-468",
        f"{MEDIAPIPE}+onnx.1",
        "face_landmarks",
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
        "face_landmark_468.onnx",
    ),
)


def fetch_wheel(cache: Path) -> Path:
    path = cache / WHEEL
    if not path.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        cmd += ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11"]
        subprocess.run([*cmd, "-d", str(cache), f"mediapipe=={MEDIAPIPE}"], check=True)
    _expect(hashlib.sha256(path.read_bytes()).hexdigest(), WHEEL_SHA256, WHEEL)
    return path


def check_against_tflite(tflite_bytes: bytes, onnx_bytes: bytes) -> float:
    """Largest absolute output difference to the TFLite interpreter on a fixed random input."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        print("  ai-edge-litert not installed: skipping the reference check")
        return float("nan")
    import onnxruntime as ort

    interp = Interpreter(model_content=tflite_bytes)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    x = np.random.default_rng(0).uniform(-1, 1, inp["shape"]).astype(np.float32)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    ref = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.transpose(0, 3, 1, 2)})
    worst = 0.0
    for out, value in zip(sess.get_outputs(), got, strict=True):
        diff = float(np.abs(value - ref[out.name]).max())
        scale = float(np.abs(ref[out.name]).max()) or 1.0
        if diff > 1e-4 * max(scale, 1.0):
            raise SystemExit(f"ONNX output {out.name} differs from TFLite by {diff}")
        worst = max(worst, diff)
    return worst


def build(cache: Path, key: Path | None, check: bool = False) -> int:
    failures = 0
    with zipfile.ZipFile(fetch_wheel(cache)) as wheel:
        for name, version, role, member, sha, out in MODELS:
            tfl = wheel.read(member)
            _expect(hashlib.sha256(tfl).hexdigest(), sha, member)
            onnx_bytes = convert(tfl)
            diff = check_against_tflite(tfl, onnx_bytes)
            if check:
                failures += check_reproduced(name, onnx_bytes)
                continue
            entry = ModelEntry(
                name=name,
                version=version,
                role=role,
                file=out,
                sha256="0" * 64,
                licence="Apache-2.0",
                provenance={
                    "source": f"PyPI mediapipe=={MEDIAPIPE} ({WHEEL}, sha256 {WHEEL_SHA256})",
                    "member": member,
                    "member_sha256": sha,
                    "converter": "models/build/tflite_onnx.py (fp16 weights upcast to fp32)",
                    "build": "python -m modeltools.build.mediapipe_models",
                },
            )
            done = publish(entry, onnx_bytes, key)
            print(f"{done.label}: {out} sha256 {done.sha256} max|onnx-tflite| {diff:.2e}")
    return failures


def _expect(got: str, want: str, what: str) -> None:
    if got != want:
        raise SystemExit(f"{what}: SHA-256 {got} is not the pinned {want}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--key", type=Path, help="Ed25519 private key (PEM) to sign the entries")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "cuntong-wheels")
    ap.add_argument("--check", action="store_true", help="rebuild and compare, write nothing")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    raise SystemExit(build(args.cache, args.key, args.check))


if __name__ == "__main__":
    main()
