"""The liveness check's frame thread: one worker thread that runs the per-frame analysis
(detector, passive models, face mesh), at real-time priority when the terminal permits it.

Why: the whole pipeline takes about 8-12 ms of CPU per frame, but under ordinary scheduling a
busy terminal can make a frame wait for the core (docs/benchmarks.md: p99 152 ms wall clock
against 12.5 ms with SCHED_FIFO on the same loaded machine). Only this one thread gets the
real-time policy (Linux schedules threads, and `sched_setscheduler(0, …)` from a thread sets
that thread alone); the agent's event loop, MQTT link and call media stay ordinary. The
thread only works while a check runs: between checks it sleeps on its queue.

It needs permission: `CAP_SYS_NICE` (the rendered systemd unit gives the agent that one
capability, ambient) or an `RLIMIT_RTPRIO` of at least the priority. Without it the thread logs a
warning once and runs under ordinary scheduling; the check works the same, only slower
under load. The kernel's RT throttle (`sched_rt_runtime_us`, 95% of each second by default)
and the unit's `LimitRTTIME=` bound what a runaway frame could take.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

log = logging.getLogger("cuntong.liveness")

T = TypeVar("T")
ORDINARY = "SCHED_OTHER"
REALTIME = "SCHED_FIFO"


class FrameThread:
    """One thread for frame work; `priority` 0 means ordinary scheduling by choice."""

    def __init__(self, priority: int = 0) -> None:
        if not 0 <= priority <= 99:
            raise ValueError(f"liveness real-time priority {priority} is not in 0-99")
        self.priority = priority
        #: The policy the thread actually runs under (known once `start` returned).
        self.policy = ORDINARY
        #: Why it runs under ordinary scheduling although a priority was asked for.
        self.refused: str | None = None
        self.native_id: int | None = None
        self.frames = 0
        self._pool = ThreadPoolExecutor(1, "liveness-frames", initializer=self._setup)
        self._started = False

    def _setup(self) -> None:
        self.native_id = threading.get_native_id()
        if self.priority == 0:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.priority))
        except OSError as err:
            self.refused = f"{err.strerror or err} (errno {err.errno})"
            log.warning(
                "liveness frames run under ordinary scheduling: SCHED_FIFO priority %d "
                "not permitted: %s; grant the agent CAP_SYS_NICE (or LimitRTPRIO=%d)",
                self.priority, self.refused, self.priority,
            )  # fmt: skip
        else:
            self.policy = REALTIME
            log.info("liveness frames run under SCHED_FIFO priority %d", self.priority)

    def start(self) -> str:
        """Start the thread (setting its policy) and return the policy in effect."""
        if not self._started:
            self._pool.submit(lambda: None).result()
            self._started = True
        return self.policy

    def _count(self, fn: Callable[..., T], *args: object) -> T:
        self.frames += 1
        return fn(*args)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` on the frame thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._count, fn, *args)

    def demote(self, why: str = "RLIMIT_RTTIME reached (SIGXCPU)") -> None:
        """Put the thread back under ordinary scheduling for good (until the agent restarts):
        the agent calls this on SIGXCPU, when a frame ran past the unit's LimitRTTIME soft
        limit without blocking, so the hard limit (a kill) is never reached."""
        if self.native_id is None or self.policy != REALTIME:
            return
        try:
            os.sched_setscheduler(self.native_id, os.SCHED_OTHER, os.sched_param(0))
        except OSError as err:  # the thread is gone (the agent is stopping)
            log.warning("liveness frame thread not demoted: %s", err)
            return
        self.policy, self.refused = ORDINARY, why
        log.warning("liveness frames moved to ordinary scheduling: %s", why)

    def current_policy(self) -> str:
        """The policy the kernel reports for the thread now (for status and tests)."""
        if self.native_id is None:
            return ORDINARY
        p = os.sched_getscheduler(self.native_id)
        return REALTIME if p == os.SCHED_FIFO else ORDINARY

    def close(self) -> None:
        self._pool.shutdown(wait=False)
