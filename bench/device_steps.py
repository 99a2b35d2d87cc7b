"""Benchmark: device steps, from the teller's request to the cloud's verified result.

- ``id_card_read``: the cloud issues the request (nonce on the timeline, SQLite), the
  terminal's handler reads the card over the serial protocol from the simulator on a pty
  (115200 baud, the reader's own frames and the photo included), signs the result with an
  enrolled P-256 key, and the cloud verifies and records it. The MQTT hop is not included
  (one publish each way on loopback: a few ms, see docs/benchmarks.md).
- ``face_match``: the step's handler on one core with the shipped face-match models: the
  ID photo read in the session against a live frame, through the signature and the cloud's
  check.
- ``active_liveness``: the agent's own ``Liveness.check`` (the shipped liveness models,
  warm) through the step's handler, the signature and the cloud's check, with a
  cooperative customer in front of a camera delivering ``--fps`` frames a second on the
  real clock: after each prompt the customer keeps still for ``--react-s`` (their reaction
  time), then acts it out (``tests.vision.faces.acted``: blink, mouth, head shake on a real
  photograph). Slow frames are not queued: the camera hands over the next frame on its own
  schedule, as a real one drops what the reader did not take.

    PYTHONPATH=. .venv/bin/python bench/device_steps.py --runs 20 --liveness-runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from skimage import data

from cloud.catalogue import load_catalogue
from cloud.evidence.keys import EvidenceKeys
from cloud.oversight import Oversight
from cloud.workflow import service, steps
from cloud.workflow.device import check_result
from cloud.workflow.engine import Actor
from common import suite as suite_lib
from common.settings import CloudSettings
from common.wire.call import StepRequest
from cuntong.app import create_app
from edge.liveness import Liveness
from edge.steps.facematch import FaceMatchStep
from edge.steps.liveness import LivenessStep
from edge.vision.challenge import PROMPTS
from edge.vision.facematch import FaceMatcher
from edge.vision.runtime import ModelSet
from firmware_adapters.idcard.simulator import sample_card
from provisioning import ca as ca_lib
from tests.oversight.conftest import FAST_HASHER
from tests.steps_rig import enrol, id_reader
from tests.vision.faces import acted

TELLER = Actor("t-1", frozenset({"teller"}))
ACTION_OF = {prompt: action for action, prompt in PROMPTS.items()}


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    median = statistics.median(ms)
    return f"{name}: n={len(ms)} median {median:.0f} ms, p95 {p95:.0f} ms, max {ms[-1]:.0f} ms"


async def id_reads(tmp: Path, runs: int) -> list[float]:
    now = dt.datetime.now(dt.UTC)
    authority = ca_lib.load_or_create(tmp / "ca", now)
    terminal = enrol(authority, "SX-00001", now)
    ov = Oversight(load_catalogue(), EvidenceKeys.generate(), tmp / "evidence",
                   suite_lib.Suite.STANDARD, hasher=FAST_HASHER,
                   device_issuers=(authority.issuing,))  # fmt: skip
    app = create_app(CloudSettings(db_url=f"sqlite://{tmp / 'c.sqlite3'}", ingest=False),
                     oversight=ov)  # fmt: skip
    out = []
    async with app.router.lifespan_context(app), id_reader(tmp, sample_card(0)) as handler:
        for i in range(runs):
            sid = f"B-{i}"
            await service.start(ov, sid, "pension", TELLER.id, dt.datetime.now(dt.UTC))
            start = time.perf_counter()
            _, request = await steps.ask(ov, sid, "id_card_read", TELLER, "SX-00001",
                                         dt.datetime.now(dt.UTC))  # fmt: skip
            result = terminal.sign(request, await handler(request), dt.datetime.now(dt.UTC))
            _, _, passed = await steps.accept(ov, ov.device_issuers, "SX-00001", sid, result,
                                              dt.datetime.now(dt.UTC))  # fmt: skip
            out.append((time.perf_counter() - start) * 1e3)
            assert passed
    return out


async def face_matches(tmp: Path, runs: int) -> list[float]:
    now = dt.datetime.now(dt.UTC)
    authority = ca_lib.load_or_create(tmp / "ca2", now)
    terminal = enrol(authority, "SX-00001", now)
    matcher = FaceMatcher.load(ModelSet.load().detector)
    live = np.ascontiguousarray(data.astronaut()[20:320, 80:380])

    async def loaded() -> FaceMatcher:
        return matcher

    async def frame() -> np.ndarray:
        return live

    out = []
    async with id_reader(tmp, sample_card(0)) as reader:
        await reader(StepRequest("s1", "id_card_read", "aa" * 16))
        step = FaceMatchStep(loaded, reader.photos.get, frame)
        for i in range(runs):
            ask = StepRequest("s1", "face_match", f"{i:032x}", {"threshold": 55})
            start = time.perf_counter()
            done = await step(ask)
            result = terminal.sign(ask, done, dt.datetime.now(dt.UTC))
            check_result(result, session_id="s1", terminal_id="SX-00001",
                         issued={ask.nonce: "face_match"}, answered=(),
                         issuers=[authority.issuing], now=dt.datetime.now(dt.UTC))  # fmt: skip
            out.append((time.perf_counter() - start) * 1e3)
            assert done.outcome == "passed"
    return out


class Cooperative:
    """A customer who does what the screen says, after a human reaction time."""

    def __init__(self, frames: dict[str, list[np.ndarray]], fps: float, react_s: float):
        self.frames, self.interval, self.react_s = frames, 1.0 / fps, react_s
        self.action, self.since = "neutral", 0.0

    async def hear(self, prompt: str) -> None:
        self.action, self.since = ACTION_OF.get(prompt, "neutral"), time.monotonic()

    async def stream(self) -> AsyncIterator[np.ndarray]:
        tick, k = time.monotonic(), 0
        while True:
            acting = time.monotonic() - self.since >= self.react_s
            shown = self.frames[self.action if acting else "neutral"]
            yield shown[k % len(shown)]
            k += 1
            tick += self.interval
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            tick = max(tick, time.monotonic() - self.interval)  # a late reader skips frames


async def active_liveness(tmp: Path, runs: int, fps: float, react_s: float) -> list[float]:
    now = dt.datetime.now(dt.UTC)
    authority = ca_lib.load_or_create(tmp / "ca3", now)
    terminal = enrol(authority, "SX-00001", now)
    models = ModelSet.load()
    customer = Cooperative(acted(models, data.astronaut()), fps, react_s)
    liveness = Liveness(customer.stream, prompt=customer.hear)
    await liveness.models()  # a terminal has its models loaded before any call
    step = LivenessStep(liveness.check, lambda: "password_reset")
    out = []
    for i in range(runs):
        ask = StepRequest("s1", "active_liveness", f"{i:032x}", {})
        start = time.perf_counter()
        done = await step(ask)
        result = terminal.sign(ask, done, dt.datetime.now(dt.UTC))
        check_result(result, session_id="s1", terminal_id="SX-00001",
                     issued={ask.nonce: "active_liveness"}, answered=(),
                     issuers=[authority.issuing], now=dt.datetime.now(dt.UTC))  # fmt: skip
        out.append((time.perf_counter() - start) * 1e3)
        assert done.outcome == "passed", done.reason
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--liveness-runs", type=int, default=5)
    parser.add_argument("--fps", type=float, default=10.0, help="camera frames a second")
    parser.add_argument("--react-s", type=float, default=0.6, help="customer reaction time")
    parser.add_argument("--only", choices=["id_card_read", "face_match", "active_liveness"])
    args = parser.parse_args()
    if args.only == "active_liveness":
        with tempfile.TemporaryDirectory() as tmp:
            ms = await active_liveness(Path(tmp), args.liveness_runs, args.fps, args.react_s)
            print(summary(f"active_liveness at {args.fps:g} fps, reaction {args.react_s:g} s", ms))
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(
            summary(
                "id_card_read, request to verified result", await id_reads(Path(tmp), args.runs)
            )
        )
        print(
            summary(
                "face_match step incl. signing and check", await face_matches(Path(tmp), args.runs)
            )
        )
        ms = await active_liveness(Path(tmp), args.liveness_runs, args.fps, args.react_s)
        print(summary(f"active_liveness at {args.fps:g} fps, reaction {args.react_s:g} s", ms))


if __name__ == "__main__":
    asyncio.run(main())
