"""The failover-under-load benchmark runs end to end at a small size, so it cannot rot unseen:
two API replicas behind HAProxy, Mosquitto, Janus, 10 customers queued on MQTT and 3 calls
live with media, the leader SIGKILLed once. The bench's own checks must find every place
kept and every call going on; how long the takeover took is its figure to print, not this
test's to assert."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "failover_load.py"


# Eight processes and a kill on a shared machine: more than the suite's default 180 s.
@pytest.mark.timeout(420)
def test_a_killed_leader_costs_no_place_and_no_call() -> None:
    argv = [sys.executable, str(BENCH), "--queued", "10", "--calls", "3", "--rounds", "1",
            "--clip-seconds", "2", "--settle", "2", "--workers", "1"]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=400, check=False)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("result: ")]
    assert lines, out
    result = json.loads(lines[-1].removeprefix("result: "))
    assert (result["queued"], result["calls"], result["rounds"]) == (10, 3, 1)
    assert result["places_lost"] == 0 and result["calls_dropped"] == 0, out
    # and every call's media was flowing when the leader was killed (none excused as broken)
    assert result["calls_broken_before_a_kill"] == 0, out
    # every step after the kill happened (within the bench's deadline), whatever it took
    for key in ("takeover_s", "served_s", "tellers_back_s", "announced_s"):
        assert result[key]["never"] == 0 and result[key]["p50"] is not None, (key, out)
    assert "reproduce: .venv/bin/python bench/failover_load.py" in out
