"""The call's media send path at a raised CPU priority for the length of a call.

Why: the terminal's call is Python. aiortc reads the camera and microphone tracks, paces,
packetises, encrypts and sends RTP on the agent's event loop thread, and encodes VP8 and
Opus on the loop's default executor threads (``RTCRtpSender._next_encoded_frame`` →
``run_in_executor(None, …)``). On a busy terminal (the customer screen's Chromium, the
vision models) those threads wait for a core, frames leave in bursts, the link's queue
tail-drops them and the teller's picture and voice stall (docs/benchmarks/weak-link.md).

So while a call runs those threads get a lower nice value (``call_media_nice``, e.g. -10:
about 10x the CPU share of an ordinary thread when the cores are contended; real-time
threads such as the liveness frame thread, SCHED_FIFO, still come first). It needs
``CAP_SYS_NICE``, which the rendered agent unit grants (``cuntong.deploy.agent_unit``); a
nice value is not real time, so ``LimitRTTIME=`` does not apply and a busy loop cannot lock
the machine up. Without the permission the call runs at ordinary priority and says why,
once per call. When the call ends the threads go back to the nice value they had.

Linux sets nice per thread (``setpriority(PRIO_PROCESS, tid, …)``) and a new thread starts
with its creator's value, so threads the loop thread starts during the call inherit the
raised value: new executor threads, and aiortc's decoder threads for the teller's media
(they end with the call). ``restore`` puts back every thread this raised that still runs
and the executor threads started meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["EXECUTOR_PREFIX", "MediaPriority", "thread_nice"]

log = logging.getLogger("cuntong.teller.priority")

#: asyncio's default executor names its threads ``asyncio_<n>``: where aiortc encodes.
EXECUTOR_PREFIX = "asyncio_"


def thread_nice(tid: int) -> int:
    """A thread's nice value (Linux: ``PRIO_PROCESS`` with a thread id is that thread)."""
    return os.getpriority(os.PRIO_PROCESS, tid)


class MediaPriority:
    """``raise_()`` on the loop thread when the call publishes, ``restore()`` when it ends."""

    def __init__(self, nice: int = 0) -> None:
        if not -20 <= nice <= 0:
            raise ValueError(f"call media nice value {nice} is not in -20..0")
        self.nice = nice
        #: Why the last call ran at ordinary priority although a nice value was asked for.
        self.refused: str | None = None
        #: thread id -> the nice value it had before this raised it
        self._was: dict[int, int] = {}

    @property
    def raised(self) -> list[int]:
        """The thread ids running at the raised value (their nice value now ``nice``)."""
        return list(self._was)

    def raise_(self) -> bool:
        """Raise the calling (loop) thread and the default executor's threads; True when
        they run at ``nice`` now. Idempotent: a republish in the same call changes nothing."""
        if self.nice == 0:
            return False
        tids = [threading.get_native_id()] + [
            t.native_id
            for t in threading.enumerate()
            if t.name.startswith(EXECUTOR_PREFIX) and t.native_id is not None
        ]
        for tid in tids:
            if tid in self._was:
                continue
            try:
                was = thread_nice(tid)
                if was > self.nice:
                    os.setpriority(os.PRIO_PROCESS, tid, self.nice)
            except ProcessLookupError:
                continue  # the thread ended meanwhile
            except OSError as err:
                self.refused = f"{err.strerror or err} (errno {err.errno})"
                log.warning(
                    "call media runs at ordinary priority: nice %d not permitted: %s; "
                    "grant the agent CAP_SYS_NICE (the rendered unit does)",
                    self.nice,
                    self.refused,
                )
                self.restore()
                return False
            self._was[tid] = was
        self.refused = None
        log.info("call media threads at nice %d: %s", self.nice, sorted(self._was))
        return True

    def restore(self) -> None:
        """Every thread this raised (and that still runs) back to its earlier value; executor
        threads started during the call (which inherited the raised value) back to the loop
        thread's earlier value."""
        was, self._was = self._was, {}
        if not was:
            return
        base = next(iter(was.values()))  # the loop thread's, recorded first
        for t in threading.enumerate():
            tid = t.native_id
            if t.name.startswith(EXECUTOR_PREFIX) and tid is not None and tid not in was:
                try:
                    if thread_nice(tid) == self.nice:
                        was[tid] = base
                except OSError:
                    continue
        for tid, nice in was.items():
            try:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            except ProcessLookupError:
                continue
            except OSError as err:  # raising a nice value is always permitted; say so if not
                log.warning("call media thread %d not restored to nice %d: %s", tid, nice, err)
