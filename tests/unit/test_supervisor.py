"""The launcher's restart policy (pure) and the bounded stop of real child processes."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from common import procs
from cuntong.supervisor import Child, Restarts, Supervisor


def test_quick_exits_back_off_and_a_stable_run_starts_over() -> None:
    r = Restarts(base_s=1.0, cap_s=8.0, stable_s=60.0)
    # The largest draw shows the ceiling: 1, 2, 4, 8, 8 … seconds after each quick exit.
    waits = [r.after_exit(100.0, 101.0, 0.999) - 101.0 for _ in range(5)]
    assert [round(w) for w in waits] == [1, 2, 4, 8, 8]
    # A run of a minute or more was not a crash loop: back to the first step.
    assert r.after_exit(100.0, 200.0, 0.999) - 200.0 == pytest.approx(0.999)


def _sleeper(ignore_term: bool = False) -> list[str]:
    code = "import signal, time\n"
    if ignore_term:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "print('ready', flush=True)\ntime.sleep(60)\n"
    return [sys.executable, "-c", code]


def _wait_ready(log: Path) -> None:
    deadline = time.monotonic() + 10
    while "ready" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_child_that_exits_is_started_again(tmp_path: Path) -> None:
    sup = Supervisor()
    child = sup.add(Child("sleeper", _sleeper(), tmp_path / "s.log"), now=0.0)
    assert child.proc is not None
    first = child.proc.pid
    try:
        os.kill(first, signal.SIGKILL)
        child.proc.wait(5)
        sup.tick(now=10.0, draw=0.5)  # noticed: due 0.5 s later (first step, half draw)
        assert child.due == pytest.approx(10.5) and child.proc.pid == first
        sup.tick(now=10.4, draw=0.5)
        assert child.proc.pid == first and child.restarted == 0
        sup.tick(now=10.6, draw=0.5)
        assert child.proc.pid != first and child.restarted == 1 and child.due is None
        assert child.proc.poll() is None
    finally:
        sup.stop(5)


def test_stop_all_kills_the_stuck_and_names_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    polite = procs.start(_sleeper(), tmp_path / "polite.log")
    stuck = procs.start(_sleeper(ignore_term=True), tmp_path / "stuck.log")
    _wait_ready(tmp_path / "stuck.log")  # its SIGTERM handler is in place
    with caplog.at_level(logging.WARNING, logger="cuntong.procs"):
        names = procs.stop_all([("polite", polite), ("stuck", stuck)], timeout=1.0)
    assert names == ["stuck"]
    assert polite.returncode == -signal.SIGTERM
    assert stuck.returncode == -signal.SIGKILL
    assert "stuck" in caplog.text and "killed" in caplog.text
