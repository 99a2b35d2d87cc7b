"""Run in a child process by `test_frame_thread.py`, under the rlimits and user the test sets.

    python -m tests.vision.rt_probe check PRIORITY   a whole liveness check (edge.liveness)
    python -m tests.vision.rt_probe rttime PRIORITY  a frame that spins past RLIMIT_RTTIME

Prints one JSON line: the frame thread's policy as the thread set it and as the kernel
reports it, why it was refused, how many frames ran on it, and the check's outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator

import numpy as np
from skimage import data

from edge.liveness import Liveness
from edge.vision.challenge import PROMPTS
from edge.vision.runtime import ModelSet
from tests.vision.faces import acted

ACTION_OF = {v: k for k, v in PROMPTS.items()}


async def check(priority: int) -> dict[str, object]:
    frames = acted(ModelSet.load(), np.ascontiguousarray(data.astronaut()))
    action = "neutral"

    async def hear(prompt: str) -> None:
        nonlocal action
        action = ACTION_OF.get(prompt, "neutral")

    async def stream() -> AsyncIterator[np.ndarray]:
        for _ in range(40):
            for frame in frames[action]:
                yield frame

    liveness = Liveness(stream, prompt=hear, rt_priority=priority)
    result = await liveness.check("password_reset")
    thread = liveness.frame_thread
    assert thread is not None
    out = {
        "main_thread": "SCHED_FIFO" if os.sched_getscheduler(0) == os.SCHED_FIFO else "other",
        "policy": thread.policy,
        "kernel": thread.current_policy(),
        "refused": thread.refused,
        "frames_on_thread": thread.frames,
        "frames": result.frames,
        "decision": result.decision,
    }
    liveness.close()
    return out


async def rttime(priority: int) -> dict[str, object]:
    """A frame that takes 0.6 s of CPU without blocking, past the soft RLIMIT_RTTIME the
    test set: the kernel sends SIGXCPU and the agent's handler demotes the thread."""
    liveness = Liveness(None, rt_priority=priority)
    thread = await liveness._frame_thread()
    before = thread.current_policy()
    watching = liveness.watch_rt_time()

    def spin() -> str:
        end = time.thread_time() + 0.6
        while time.thread_time() < end:
            pass
        return thread.current_policy()

    after_spin = await thread.run(spin)
    liveness.close()
    return {
        "before": before,
        "watching": watching,
        "after_spin": after_spin,
        "policy": thread.policy,
        "kernel": thread.current_policy(),
        "refused": thread.refused,
    }


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    mode, priority = sys.argv[1], int(sys.argv[2])
    out = asyncio.run(check(priority) if mode == "check" else rttime(priority))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
