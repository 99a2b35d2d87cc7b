"""The liveness check's frame thread at real-time priority, as the rendered agent unit grants
it (`User=` + `AmbientCapabilities=CAP_SYS_NICE`), and the fallback where it is not permitted.

Each case runs `tests/vision/rt_probe.py` in a child process under the real kernel, as an
unprivileged user (nobody) through `setpriv`, with or without CAP_SYS_NICE as an ambient
capability (what systemd does for that unit) and with the RLIMIT_RTPRIO / RLIMIT_RTTIME the
case sets, so what is permitted is decided by the kernel, not by the test. Dropping to
nobody needs root and setpriv; without them only the not-permitted case runs (as the
current user, RLIMIT_RTPRIO 0).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.settings import AgentSettings
from cuntong.deploy import LIVENESS_RT_PRIORITY, agent_unit
from edge.vision.frames import ORDINARY, REALTIME, FrameThread

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
SETPRIV = shutil.which("setpriv")
DROP = os.geteuid() == 0 and SETPRIV is not None
needs_root = pytest.mark.skipif(not DROP, reason="dropping to nobody needs root and setpriv")


def _probe(  # type: ignore[no-untyped-def]
    mode: str, priority: int, sys_nice: bool, rttime_us: tuple[int, int] | None = None
):
    def limits() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
        resource.setrlimit(resource.RLIMIT_RTPRIO, (0, hard))  # no rlimit route to SCHED_FIFO
        if rttime_us is not None:
            resource.setrlimit(resource.RLIMIT_RTTIME, rttime_us)

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/tmp",
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    drop: list[str] = []
    if DROP:
        assert SETPRIV is not None
        drop = [SETPRIV, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        if sys_nice:
            drop += ["--inh-caps=+sys_nice", "--ambient-caps=+sys_nice"]
    done = subprocess.run(
        [*drop, sys.executable, "-m", "tests.vision.rt_probe", mode, str(priority)],
        cwd=ROOT, env=env, preexec_fn=limits, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_not_permitted_falls_back_to_ordinary_scheduling_with_a_warning() -> None:
    out, log = _probe("check", LIVENESS_RT_PRIORITY, sys_nice=False)
    assert out["policy"] == ORDINARY and out["kernel"] == ORDINARY
    assert "not permitted" in out["refused"].lower()
    assert "SCHED_FIFO priority 10 not permitted" in log and "CAP_SYS_NICE" in log
    # The check itself ran, every frame on the frame thread.
    assert out["frames"] > 0 and out["frames_on_thread"] == out["frames"]
    assert out["decision"] in ("pass", "manual_review", "reject")


@needs_root
def test_the_units_grant_lets_the_frame_thread_run_sched_fifo() -> None:
    """An unprivileged user with CAP_SYS_NICE as its only (ambient) capability, as the
    rendered unit starts the agent: the frame thread runs SCHED_FIFO, the rest does not."""
    unit = agent_unit(Path(sys.prefix))
    assert "AmbientCapabilities=CAP_SYS_NICE" in unit
    assert "CapabilityBoundingSet=CAP_SYS_NICE" in unit and "LimitRTTIME=" in unit
    assert f"CUNTONG_AGENT_LIVENESS_RT_PRIORITY={LIVENESS_RT_PRIORITY}" in unit
    out, log = _probe("check", LIVENESS_RT_PRIORITY, sys_nice=True)
    assert out["policy"] == REALTIME and out["kernel"] == REALTIME, log
    assert out["main_thread"] == "other"  # only the frame thread
    assert out["refused"] is None and "not permitted" not in log
    assert out["frames"] > 0 and out["frames_on_thread"] == out["frames"]


@needs_root
def test_a_frame_past_the_rt_time_limit_is_demoted_not_killed() -> None:
    """A frame spinning 0.6 s without blocking passes the soft RLIMIT_RTTIME (50 ms): the
    kernel sends SIGXCPU, the agent's handler moves the thread to ordinary scheduling and the
    process lives on (the 20 s hard limit, a SIGKILL, is never reached)."""
    out, log = _probe("rttime", 10, sys_nice=True, rttime_us=(50_000, 20_000_000))
    assert out["before"] == REALTIME and out["watching"]
    assert out["policy"] == ORDINARY and out["kernel"] == ORDINARY
    assert "RLIMIT_RTTIME" in out["refused"] and "moved to ordinary scheduling" in log


def test_priority_zero_is_ordinary_by_choice_and_bad_priorities_are_refused() -> None:
    thread = FrameThread(0)
    try:
        assert thread.start() == ORDINARY and thread.refused is None
        assert thread.current_policy() == ORDINARY
    finally:
        thread.close()
    with pytest.raises(ValueError, match="priority 100"):
        FrameThread(100)
    s = AgentSettings(terminal_id="t-1", liveness_rt_priority=10)
    assert s.liveness_rt_priority == 10
    assert AgentSettings(terminal_id="t-1").liveness_rt_priority == 0
    with pytest.raises(ValueError, match="liveness_rt_priority"):
        AgentSettings(terminal_id="t-1", liveness_rt_priority=120)
