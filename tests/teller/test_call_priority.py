"""The call's media send path at a raised priority (``edge.teller.priority``), on real threads.

Raised: the loop thread and its default executor's threads (where aiortc encodes) run at the
call's nice value, executor threads started during the call inherit it, and all go back
afterwards. Refused: a process without CAP_SYS_NICE (``setpriv`` drops it from the bounding
set, as an agent outside its unit would run) keeps ordinary priority and says why.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.teller.media import CallMedia
from edge.teller.priority import EXECUTOR_PREFIX, MediaPriority, thread_nice

REPO = Path(__file__).resolve().parents[2]


def _may_raise() -> bool:
    status = Path("/proc/self/status").read_text()
    eff = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff"))
    return bool(int(eff, 16) & (1 << 23))  # CAP_SYS_NICE


def _executor_nices() -> dict[int, int]:
    return {
        t.native_id: thread_nice(t.native_id)
        for t in threading.enumerate()
        if t.name.startswith(EXECUTOR_PREFIX) and t.native_id is not None
    }


@pytest.mark.skipif(not _may_raise(), reason="needs CAP_SYS_NICE (the agent unit grants it)")
def test_loop_and_encoder_threads_run_raised_during_the_call_and_ordinary_after() -> None:
    seen: dict[str, object] = {}

    def busy() -> int:
        time.sleep(0.05)  # held, so a second job needs a second thread
        return thread_nice(threading.get_native_id())

    async def call() -> None:
        loop = asyncio.get_running_loop()
        before = thread_nice(threading.get_native_id())
        await loop.run_in_executor(None, busy)  # an executor thread from before the call
        media = CallMedia(simulate=True, link_kbps=300, face_aware=False, nice=-5)
        await media.prepare()
        media.tracks()  # publishing: raises the loop thread and the encoder threads
        seen["loop"] = thread_nice(threading.get_native_id())
        seen["executor"] = set(_executor_nices().values())
        # Threads started during the call (two jobs at once) inherit the raised value.
        seen["new"] = set(await asyncio.gather(*(loop.run_in_executor(None, busy) for _ in "ab")))
        media.release()
        seen["after_loop"] = thread_nice(threading.get_native_id())
        seen["after_executor"] = set(_executor_nices().values())
        seen["before"] = before

    # Its own thread and loop: the test process's other threads keep their priority.
    t = threading.Thread(target=lambda: asyncio.run(call()))
    t.start()
    t.join(60)
    assert seen["loop"] == -5 and seen["executor"] == {-5} and seen["new"] == {-5}
    assert seen["after_loop"] == seen["before"] == 0
    assert seen["after_executor"] == {0}


def test_without_cap_sys_nice_the_call_runs_ordinary_and_says_why() -> None:
    setpriv = shutil.which("setpriv")
    assert setpriv, "util-linux setpriv is on the apt list"
    script = (
        "import logging, threading\n"
        "from edge.teller.priority import MediaPriority, thread_nice\n"
        "logging.basicConfig(level=logging.WARNING)\n"
        "p = MediaPriority(-10)\n"
        "print(p.raise_(), p.refused, thread_nice(threading.get_native_id()), p.raised)\n"
    )
    run = subprocess.run(
        [setpriv, "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", sys.executable, "-c", script],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert run.stdout.split() == ["False", "Permission", "denied", "(errno", "13)", "0", "[]"]
    assert "call media runs at ordinary priority: nice -10 not permitted" in run.stderr
    assert "CAP_SYS_NICE" in run.stderr


def test_a_nice_value_outside_what_a_call_may_ask_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"call media nice value 5 is not in -20\.\.0"):
        MediaPriority(5)
