"""Benchmark of the edge vision pipeline and face-aware compression.

    .venv/bin/python bench/vision.py [--frames 300] [--video-frames 90]

1. Latency per 640×480 frame of the whole liveness pipeline (detector + passive ensemble +
   face mesh + the planarity tracker's update) on ONE core (the process is pinned to CPU 0,
   onnxruntime runs one thread): p50 and p99, and per stage. Target: p99 under 15 ms.
   `--latency-only` skips part 2. `--realtime PRIO` runs the process under SCHED_FIFO at
   that priority (root only; the kernel's RT throttling still leaves 5% of the core to
   others): the wall-clock figure a terminal gets when the liveness check has its core,
   measured on a machine whose other jobs would otherwise preempt it. `--fps 15` feeds the
   frames at a camera's rate instead of back to back (a back-to-back run under SCHED_FIFO
   hits the RT throttle every second). The load average and the policy are printed.
   `--agent-thread PRIO` instead runs each frame the way the agent does: an asyncio loop
   (ordinary scheduling) hands it to `edge.vision.frames.FrameThread(PRIO)`, the agent's
   own frame thread, which takes SCHED_FIFO where permitted and falls back (with the
   warning) where not. Printed: the pipeline's wall clock on that thread, and the wall clock
   from the loop's hand-off to the result back in the loop (which adds the ordinary loop
   thread's wake-up).
2. Face-aware compression (edge.vision.roi.BackgroundSmoother) vs plain VP8 (libvpx via
   PyAV, real-time CBR): bits the plain encode needs for the face-crop PSNR / SSIM that the
   face-aware encode reaches at 300 kbit/s (log-rate interpolation along plain encodes at
   250-850 kbit/s). Target: at least 30% fewer bits. Then the detector runs on the decoded
   face-aware video: the share of frames where it still finds the face.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time

import numpy as np

from edge.vision import pipeline, roi
from edge.vision.frames import FrameThread
from edge.vision.planarity import Planarity
from edge.vision.runtime import ModelSet
from modeltools.eval import compression

COMMAND = (
    ".venv/bin/python bench/vision.py [--cpu N] [--latency-only] [--fps 15] "
    "[--realtime PRIO | --agent-thread PRIO]"
)


def latency(models: ModelSet, frames: list[np.ndarray], n: int, fps: float | None = None) -> None:
    for f in frames[:10]:
        pipeline.analyze(models, f)  # warm-up
    stages: dict[str, list[float]] = {
        k: [] for k in ("detector", "passive", "landmarks", "planarity", "total", "total, CPU time")
    }
    track = Planarity()
    start = time.monotonic()
    for i in range(n):
        if fps:  # frames arrive at the camera's rate, not back to back
            time.sleep(max(0.0, start + i / fps - time.monotonic()))
        f = frames[i % len(frames)]
        t0 = time.perf_counter()
        (face,) = pipeline.detect(models, f)
        t1 = time.perf_counter()
        pipeline.passive_scores(models, f, face)
        t2 = time.perf_counter()
        pipeline.landmarks(models, f, face)
        t3, c3 = time.perf_counter(), time.thread_time()
        result = pipeline.analyze(models, f)
        t4 = time.perf_counter()
        assert result.points is not None and result.face and result.measures
        track = track.feed(result.points, result.face.box, result.measures.yaw)
        t5, c5 = time.perf_counter(), time.thread_time()
        # CPU time of this thread (onnxruntime runs on it with one intra-op thread): what
        # the frame costs without the waits a shared core adds to the wall-clock figures.
        # "total" = one analyze() call (all three models) plus the planarity update.
        spans = (t1 - t0, t2 - t1, t3 - t2, t5 - t4, t5 - t3, c5 - c3)
        for k, v in zip(stages, spans, strict=True):
            stages[k].append(v * 1000)
    policy = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_FIFO: "SCHED_FIFO"}.get(
        os.sched_getscheduler(0), str(os.sched_getscheduler(0))
    )
    pace = f"paced at {fps:g} frames/s" if fps else "back to back"
    print(f"\n## Latency, 640×480 frame, one core, {n} frames {pace} (ms)\n")
    print(
        f"scheduling {policy} priority {os.sched_getparam(0).sched_priority}; "
        f"load average after the run {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n"
    )
    print("| stage | p50 | p99 | max | over 15 ms |\n| --- | ---: | ---: | ---: | ---: |")
    for k, v in stages.items():
        a = np.asarray(v)
        print(
            f"| {k} | {np.percentile(a, 50):.2f} | {np.percentile(a, 99):.2f} | {a.max():.2f} "
            f"| {int((a > 15).sum())} of {a.size} |"
        )


def agent_path(models: ModelSet, frames: list[np.ndarray], n: int, fps: float, prio: int) -> None:
    """Frames through the agent's FrameThread from an ordinary asyncio loop, as the check."""

    def one(f: np.ndarray, track: Planarity) -> tuple[Planarity, float, float]:
        t0, c0 = time.perf_counter(), time.thread_time()
        result = pipeline.analyze(models, f)
        assert result.points is not None and result.face and result.measures
        track = track.feed(result.points, result.face.box, result.measures.yaw)
        return track, (time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000

    async def run() -> tuple[list[float], list[float], list[float], str]:
        thread = FrameThread(prio)
        policy = await asyncio.to_thread(thread.start)
        track, wall, on_thread, cpu = Planarity(), [], [], []
        for f in frames[:10]:
            await thread.run(pipeline.analyze, models, f)  # warm-up
        start = time.monotonic()
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / fps - time.monotonic()))
            t0 = time.perf_counter()
            track, w, c = await thread.run(one, frames[i % len(frames)], track)
            wall.append((time.perf_counter() - t0) * 1000)
            on_thread.append(w)
            cpu.append(c)
        thread.close()
        return wall, on_thread, cpu, policy

    wall, on_thread, cpu, policy = asyncio.run(run())
    print(f"\n## Agent path: FrameThread({prio}), {n} frames paced at {fps:g} frames/s (ms)\n")
    loop = "SCHED_FIFO" if os.sched_getscheduler(0) == os.SCHED_FIFO else "SCHED_OTHER"
    print(
        f"frame thread {policy}; event loop {loop}; "
        f"load average after the run {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores\n"
    )
    print("| measure | p50 | p99 | max | over 15 ms |\n| --- | ---: | ---: | ---: | ---: |")
    for k, v in (
        ("pipeline on the frame thread, wall clock", on_thread),
        ("hand-off from the loop to the result back in it, wall clock", wall),
        ("frame thread CPU time", cpu),
    ):
        a = np.asarray(v)
        print(
            f"| {k} | {np.percentile(a, 50):.2f} | {np.percentile(a, 99):.2f} | {a.max():.2f} "
            f"| {int((a > 15).sum())} of {a.size} |"
        )


def compress(models: ModelSet, frames: list[np.ndarray]) -> None:
    boxes = [pipeline.detect(models, f)[0].box for f in frames]
    smoother = roi.BackgroundSmoother()
    aware = [smoother(f, b) for f, b in zip(frames, boxes, strict=True)]
    print("\n## Face-aware compression, VP8 real-time CBR, 640×480 @ 15 fps\n")
    print("| encode | target kbit/s | actual kbit/s | face PSNR dB | face SSIM |")
    print("| --- | ---: | ---: | ---: | ---: |")
    plain = []
    for rate in (250_000, 300_000, 400_000, 500_000, 650_000, 850_000):
        e = compression.encode_vp8(frames, rate)
        p, s = compression.face_quality(frames, e.decoded, boxes)
        plain.append((e.bits, p, s))
        print(f"| plain | {rate // 1000} | {e.kbps:.0f} | {p:.2f} | {s:.4f} |")
    e = compression.encode_vp8(aware, 300_000)
    p, s = compression.face_quality(frames, e.decoded, boxes)
    print(f"| face-aware | 300 | {e.kbps:.0f} | {p:.2f} | {s:.4f} |")
    need_p = compression.bits_at_quality([(b, q) for b, q, _ in plain], p)
    need_s = compression.bits_at_quality([(b, q) for b, _, q in plain], s)
    print(
        f"\nPlain VP8 needs {need_p / e.bits:.2f}× the bits for the same face PSNR "
        f"({1 - e.bits / need_p:.1%} saved) and {need_s / e.bits:.2f}× for the same face "
        f"SSIM ({1 - e.bits / need_s:.1%} saved)."
    )
    found = sum(len(pipeline.detect(models, d)) == 1 for d in e.decoded)
    plain300 = compression.encode_vp8(frames, 300_000).decoded
    found_plain = sum(len(pipeline.detect(models, d)) == 1 for d in plain300)
    print(
        f"Detector finds the face in {found}/{len(e.decoded)} decoded face-aware frames "
        f"(plain at 300 kbit/s: {found_plain}/{len(plain300)})."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--video-frames", type=int, default=90)
    ap.add_argument("--cpu", type=int, help="core to pin to (default: the first allowed)")
    ap.add_argument("--latency-only", action="store_true", help="skip the compression part")
    ap.add_argument("--fps", type=float, help="feed frames at this rate (default: back to back)")
    ap.add_argument(
        "--realtime", type=int, metavar="PRIO", help="run under SCHED_FIFO at PRIO (1-99, root)"
    )
    ap.add_argument(
        "--agent-thread", type=int, metavar="PRIO",
        help="run frames through the agent's FrameThread(PRIO) (0: ordinary scheduling)",
    )  # fmt: skip
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cpu = sorted(os.sched_getaffinity(0))[0] if args.cpu is None else args.cpu
    os.sched_setaffinity(0, {cpu})
    if args.realtime is not None:
        # Before onnxruntime starts any thread: new threads inherit the policy.
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime))
    print(f"pinned to CPU {cpu}; load average before the run: {os.getloadavg()[0]:.2f}")
    models = ModelSet.load()
    frames = compression.synthetic_video(args.video_frames)
    print(f"# bench/vision.py — reproduce with: {COMMAND}")
    print(f"models: {', '.join(f'{k}@{v}' for k, v in models.versions.items())}")
    if args.agent_thread is not None:
        agent_path(models, frames, args.frames, args.fps or 15.0, args.agent_thread)
    else:
        latency(models, frames, args.frames, args.fps)
    if not args.latency_only:
        compress(models, frames)


if __name__ == "__main__":
    main()
