"""The launcher's restart policy (pure) and the bounded stop of real child processes."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from common import procs
from common.errors import ConfigError
from cuntong.supervisor import WATCHDOG_ENV, Child, Restarts, Supervisor, agent_watchdog
from cuntong.watchdog import Action, Liveness, Watchdog, parse


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


# --- the watchdog: pure -----------------------------------------------------------------

POLICY = Watchdog(interval_s=10.0, start_s=60.0, stop_s=20.0, abort_s=5.0)


def test_notifications_parse_and_garbage_is_named() -> None:
    assert parse(b"READY=1\nSTATUS=serving 3 customers\n") == {
        "READY": "1",
        "STATUS": "serving 3 customers",
    }
    assert parse(b"EXTEND_TIMEOUT_USEC=5000000") == {"EXTEND_TIMEOUT_USEC": "5000000"}
    with pytest.raises(ValueError, match="not a KEY=VALUE line: 'hello'"):
        parse(b"READY=1\nhello")
    with pytest.raises(ValueError, match="not UTF-8"):
        parse(b"\xff\xfe")
    with pytest.raises(ValueError, match="not a positive duration"):
        Watchdog(interval_s=0)


def test_a_start_that_never_says_ready_is_aborted_then_killed() -> None:
    live = Liveness(POLICY, started_at=100.0)
    live.heard({"WATCHDOG": "1"}, 130.0)  # pings before READY do not end the start phase
    assert live.check(159.9) is None
    assert live.check(160.0) is Action.ABORT
    assert live.reason == "no READY=1 within 60.0s of starting"
    assert live.check(164.9) is None  # SIGABRT had abort_s to work
    assert live.check(165.0) is Action.KILL
    assert live.check(500.0) is None  # each action once


def test_extend_timeout_buys_a_slow_start_and_a_slow_stop_more_time() -> None:
    live = Liveness(POLICY, started_at=0.0)
    live.heard({"EXTEND_TIMEOUT_USEC": "90000000"}, 50.0)
    assert live.check(139.0) is None and live.deadline() == 140.0
    live.heard({"READY": "1"}, 100.0)
    assert live.deadline() == 110.0  # running: the watchdog, extensions no longer apply
    live.heard({"STOPPING": "1"}, 105.0)
    assert live.check(124.9) is None  # stopping: stop_s, no pings needed
    live.heard({"EXTEND_TIMEOUT_USEC": "30000000"}, 120.0)
    assert live.check(149.9) is None
    assert live.check(150.0) is Action.ABORT
    assert live.reason == "still running 45.0s after STOPPING=1"


def test_pings_keep_it_alive_and_silence_is_a_hang() -> None:
    live = Liveness(POLICY, started_at=0.0)
    live.heard({"READY": "1", "STATUS": "online"}, 3.0)
    for t in range(8, 100, 5):
        live.heard({"WATCHDOG": "1"}, float(t))
        assert live.check(t + 9.9) is None
    assert live.alive_at == 98.0
    assert live.check(108.0) is Action.ABORT
    assert live.reason == "no WATCHDOG=1 for 10.0s (watchdog 10s)" and live.status == "online"


def test_the_child_may_change_its_interval_or_trigger_the_watchdog() -> None:
    live = Liveness(POLICY, started_at=0.0)
    live.heard({"READY": "1", "WATCHDOG_USEC": "40000000"}, 1.0)
    assert live.check(40.9) is None and live.check(41.0) is Action.ABORT
    other = Liveness(POLICY, started_at=0.0)
    other.heard({"READY": "1"}, 1.0)
    other.heard({"WATCHDOG": "trigger"}, 2.0)
    assert other.check(2.0) is Action.ABORT and "WATCHDOG=trigger" in other.reason


def test_a_hang_is_a_failure_and_only_the_healthy_part_counts_as_stable() -> None:
    r = Restarts(base_s=1.0, cap_s=8.0, stable_s=60.0)
    # Starts that hang every time (killed 120 s in, never healthy) still back off.
    waits = [r.after_exit(0.0, 120.0, 0.999, -9, alive_until=0.0) - 120.0 for _ in range(3)]
    assert [round(w) for w in waits] == [1, 2, 4]
    # Healthy for an hour, then hung: one failure, from the first step.
    assert r.after_exit(0.0, 3700.0, 0.999, -9, alive_until=3600.0) == pytest.approx(3700.999)
    assert r.failures == 1


def test_cuntong_up_reads_the_agents_watchdog_interval() -> None:
    assert agent_watchdog({}) == Watchdog(interval_s=30.0)
    assert agent_watchdog({WATCHDOG_ENV: "4.5"}) == Watchdog(interval_s=4.5)
    assert agent_watchdog({WATCHDOG_ENV: "0"}) is None
    for bad in ("soon", "-3"):
        with pytest.raises(ConfigError, match=f"{WATCHDOG_ENV}: '{bad}'"):
            agent_watchdog({WATCHDOG_ENV: bad})


# --- the watchdog on real child processes -----------------------------------------------


def _pinger(pings: int | None) -> list[str]:
    """A child speaking the agent's side of the protocol (``edge.sdnotify``): READY=1, then
    ``pings`` pings at half the interval (forever when None), then a hang."""
    code = (
        "import itertools, time\n"
        "from edge import sdnotify\n"
        "half = sdnotify.watchdog_s() / 2\n"
        "sdnotify.notify('READY=1\\nSTATUS=pinging')\n"
        f"for _ in itertools.islice(itertools.count(), {pings}):\n"
        "    sdnotify.notify('WATCHDOG=1')\n"
        "    time.sleep(half)\n"
        "time.sleep(600)\n"
    )
    return [sys.executable, "-c", code]


def _tick_until(sup: Supervisor, done, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not within the deadline"
        sup.tick(time.monotonic(), 0.5)
        time.sleep(0.05)


def test_a_child_that_stops_pinging_is_aborted_and_started_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sup = Supervisor()
    watchdog = Watchdog(interval_s=1.0, start_s=60.0, abort_s=30.0)
    child = Child(
        "pinger", _pinger(3), tmp_path / "p.log", restarts=Restarts(base_s=0.1), watchdog=watchdog
    )
    sup.add(child, time.monotonic())
    first = child.proc
    assert first is not None and child.notify is not None
    assert child.notify.path == tmp_path / "p.notify"
    assert oct(child.notify.path.stat().st_mode & 0o777) == "0o600"
    env = psutil.Process(first.pid).environ()
    assert env["NOTIFY_SOCKET"] == str(tmp_path / "p.notify") and env["WATCHDOG_USEC"] == "1000000"
    try:
        with caplog.at_level(logging.WARNING, logger="cuntong.supervisor"):
            _tick_until(sup, lambda: child.restarted == 1)
        assert first.returncode == -signal.SIGABRT  # SIGABRT was enough: it was not stopped
        assert child.hung == 1 and child.restarts.failures == 1
        assert "pinger (pid" in caplog.text and "hung: no WATCHDOG=1 for" in caplog.text
        assert "last status: pinging" in caplog.text
        # faulthandler (PYTHONFAULTHANDLER, set for watched children) shows where it hung.
        assert "Fatal Python error: Aborted" in (tmp_path / "p.log").read_text()
    finally:
        sup.stop(5)
    assert not (tmp_path / "p.notify").exists()


def test_a_stopped_child_is_killed_and_pings_from_others_do_not_count(tmp_path: Path) -> None:
    sup = Supervisor()
    watchdog = Watchdog(interval_s=2.0, start_s=60.0, abort_s=0.5)
    child = Child(
        "stopped",
        _pinger(None),
        tmp_path / "s.log",
        restarts=Restarts(base_s=0.1),
        watchdog=watchdog,
    )
    sup.add(child, time.monotonic())
    first = child.proc
    assert first is not None and child.notify is not None and child.liveness is not None
    try:
        _tick_until(sup, lambda: child.liveness is not None and child.liveness.ready_at)
        os.kill(first.pid, signal.SIGSTOP)  # SIGABRT stays pending on a stopped process
        address = child.notify.address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as spoof:

            def pinged_by_a_stranger() -> bool:
                spoof.sendto(b"WATCHDOG=1", address)  # from this pid: not the child's
                return child.restarted == 1

            _tick_until(sup, pinged_by_a_stranger)
        assert first.returncode == -signal.SIGKILL and child.hung == 1
        # The new run is watched afresh and says READY=1 again.
        _tick_until(sup, lambda: child.liveness is not None and child.liveness.ready_at)
    finally:
        sup.stop(5)
