"""Train the passive anti-spoofing baseline and publish it as a signed ONNX model.

    python -m modeltools.train.passive [--key PRIVATE.pem] [--check]

Seeds are fixed (data 20261125, weights 7), the features are the ONNX graph's own, and the
MLP head (40 → 16 → 2) is fitted with full-batch Adam in numpy, so the same command gives the
same bytes on any x86-64 machine with the pinned packages. Takes well under a CPU-minute.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.manifest import ClassifierSpec, ModelEntry
from modeltools.build.common import check_reproduced, publish
from modeltools.train import datagen, features

DATA_SEED, INIT_SEED = 20261125, 7
N_PER_CLASS, HIDDEN, EPOCHS, LR, L2 = 1500, 16, 600, 0.01, 1e-3
VERSION = "0.1.0"
SPEC = ClassifierSpec(
    input_size=(features.SIZE, features.SIZE),
    channel_order="RGB",
    layout="NCHW",
    scale=1 / 255,
    box_expand=1.4,
    activation="softmax",
    bona_fide_index=1,
)


def extract(images: np.ndarray) -> np.ndarray:
    """Run the features graph over uint8 N×96×96×3 images in batches."""
    sess = ort.InferenceSession(
        features.build().SerializeToString(), providers=["CPUExecutionProvider"]
    )
    out = []
    for i in range(0, len(images), 256):
        x = images[i : i + 256].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        out.append(sess.run(None, {"input": x})[0])
    return np.concatenate(out)


def fit(f: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Full-batch Adam on softmax cross-entropy; returns the head's weights."""
    rng = np.random.default_rng(INIT_SEED)
    mu, sd = f.mean(0), f.std(0) + 1e-6
    z = (f - mu) / sd
    p = {
        "W1": rng.normal(0, 1 / np.sqrt(z.shape[1]), (z.shape[1], HIDDEN)),
        "b1": np.zeros(HIDDEN),
        "W2": rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, 2)),
        "b2": np.zeros(2),
    }
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(w) for k, w in p.items()}
    onehot = np.eye(2)[y]
    for t in range(1, EPOCHS + 1):
        h = np.maximum(z @ p["W1"] + p["b1"], 0)
        logits = h @ p["W2"] + p["b2"]
        e = np.exp(logits - logits.max(1, keepdims=True))
        d = (e / e.sum(1, keepdims=True) - onehot) / len(z)
        dh = (d @ p["W2"].T) * (h > 0)
        grads = {"W2": h.T @ d, "b2": d.sum(0), "W1": z.T @ dh, "b1": dh.sum(0)}
        for k in p:
            g = grads[k] + (L2 * p[k] if k.startswith("W") else 0)
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            p[k] -= LR * (m[k] / (1 - 0.9**t)) / (np.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
    head = {"mu": mu, "sd": sd, **p}
    return {k: w.astype(np.float32) for k, w in head.items()}


def accuracy(onnx_bytes: bytes, images: np.ndarray, y: np.ndarray) -> float:
    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    x = images.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    logits = sess.run(None, {"input": x})[0]
    return float((logits.argmax(1) == y).mean())


def train() -> tuple[bytes, dict[str, float]]:
    t0 = time.process_time()
    images, y, _ = datagen.dataset(DATA_SEED, N_PER_CLASS)
    head = fit(extract(images), y)
    onnx_bytes = features.build(head).SerializeToString()
    held_x, held_y, _ = datagen.dataset(DATA_SEED + 1, 300)
    stats = {
        "train_accuracy": accuracy(onnx_bytes, images, y),
        "heldout_simulated_accuracy": accuracy(onnx_bytes, held_x, held_y),
        "cpu_seconds": time.process_time() - t0,
    }
    return onnx_bytes, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--key", type=Path, help="Ed25519 private key (PEM) to sign the entry")
    ap.add_argument("--check", action="store_true", help="rebuild and compare, write nothing")
    args = ap.parse_args()
    onnx_bytes, stats = train()
    print(", ".join(f"{k} {v:.3f}" for k, v in stats.items()))
    if args.check:
        raise SystemExit(check_reproduced("cuntong-passive-baseline", onnx_bytes))
    entry = ModelEntry(
        name="cuntong-passive-baseline",
        version=VERSION,
        role="passive_classifier",
        file="passive_baseline.onnx",
        sha256="0" * 64,
        licence="Apache-2.0",
        provenance={
            "source": "trained by the project: models/train/passive.py",
            "data": "models/train/datagen.py: simulated print/screen attacks on scikit-image "
            "sample photos (one real face); no real attack presentations",
            "seeds": {"data": DATA_SEED, "init": INIT_SEED},
            "build": "python -m modeltools.train.passive",
        },
        classifier=SPEC,
    )
    done = publish(entry, onnx_bytes, args.key, join_ensemble=True)
    print(f"{done.label}: sha256 {done.sha256}")


if __name__ == "__main__":
    main()
