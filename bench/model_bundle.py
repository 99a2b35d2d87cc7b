"""Benchmark of the model-bundle OTA path on the terminal: size, checks, health, switch.

    .venv/bin/python bench/model_bundle.py [--runs 5] [--cpu 0]

On the shipped model set as a bundle (what a bank's bundle of the same models costs; a bank's
own passive classifier adds its file size), on ONE core with one onnxruntime thread:
1. bundle size, and the time to build its bytes from the model folder;
2. `validate`: parse the tar and check every signature and SHA-256 (before any slot changes);
3. the health check: load every model in onnxruntime, run the built-in frame (p50 / max);
4. the switch: the committed set is the one the health check loaded, so the first liveness
   check after the commit loads nothing (measured: the load a terminal would otherwise pay).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from edge.vision import health
from edge.vision.runtime import ModelSet
from models.bundle import Bundle
from models.registry import DEFAULT_MANIFEST
from models.signing import TrustedKeys

COMMAND = ".venv/bin/python bench/model_bundle.py [--runs 5] [--cpu 0]"


def _ms(f: object, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()  # type: ignore[operator]
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=0)
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    trusted = TrustedKeys.from_dir()
    folder = Bundle.from_folder(DEFAULT_MANIFEST)
    raw = folder.to_bytes()
    build = _ms(lambda: Bundle.from_folder(DEFAULT_MANIFEST).to_bytes(), args.runs)
    validate = _ms(lambda: Bundle.parse(raw).verify(trusted), args.runs)
    reports = [health.check_bundle(Bundle.parse(raw), trusted)[1] for _ in range(args.runs)]
    load = _ms(lambda: ModelSet.from_bundle(Bundle.parse(raw), trusted), args.runs)
    print(f"bundle of the shipped set: {len(raw)} bytes, {len(folder.files)} models")
    print(f"build bytes:   p50 {build[0]:.1f} ms, max {build[1]:.1f} ms")
    print(f"validate:      p50 {validate[0]:.1f} ms, max {validate[1]:.1f} ms (tar, Ed25519, SHA)")
    loads = [r.load_s * 1000 for r in reports]
    frames = [r.frame_ms for r in reports]
    print(f"health load:   p50 {statistics.median(loads):.1f} ms, max {max(loads):.1f} ms")
    print(
        f"health frame:  p50 {statistics.median(frames):.1f} ms, max {max(frames):.1f} ms "
        f"(budget {health.Budget().frame_ms:.0f} ms)"
    )
    print(f"switch:        0 ms load at the first check (would be p50 {load[0]:.1f} ms)")
    print(f"runs {args.runs}, CPU {args.cpu}, onnxruntime 1 thread; reproduce: {COMMAND}")


if __name__ == "__main__":
    main()
