"""The call load benchmark runs end to end at the smallest size, so it cannot rot unseen:
Janus, the desk process, a load worker and the live probe, one call each, a recording."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "calls.py"


# The aiortc variant also runs Janus on one shared event loop (the default here: a loop per core).
AIORTC_RTP = ["--aiortc-rtp", "--janus-loops", "1"]


@pytest.mark.parametrize("rtp", [[], AIORTC_RTP], ids=["fast", "aiortc"])
def test_one_call_each_through_desk_and_janus(rtp: list[str]) -> None:
    argv = [sys.executable, str(BENCH), "--steps", "1", "--window", "2", "--workers", "1",
            "--clip-seconds", "2", *rtp]  # fmt: skip
    run = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr[-3000:]
    assert "1 concurrent recorded calls" in out and "failed to set up" not in out, out
    # Whether the probe's setup passed 1 s ("saturated") is a figure of the machine's load,
    # not of correctness: it is the benchmark's to report, not this test's to assert.
    assert "failing SRTP: 0" in out, out
    frames = re.search(r"([\d.]+) video frames/s per receiver", out)
    assert frames is not None and float(frames.group(1)) > 10, out
    ages = re.search(r"terminal->teller ms: p50 (\d+) .* \((\d+) frames\)", out)
    assert ages is not None and int(ages.group(2)) > 10 and int(ages.group(1)) < 1000, out
    archived = re.search(r"recordings: (\d+) sampled calls archived by the desk, (\d+) valid", out)
    assert archived is not None and archived.group(1) == archived.group(2) != "0", out


def test_browser_reads_the_capture_time_of_every_frame() -> None:
    glass = BENCH.parent / "glass.py"
    argv = [sys.executable, str(glass), "3"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    out = run.stdout
    assert run.returncode == 0, out + run.stderr[-3000:]
    found = re.search(r"frames read (\d+) \(unreadable (\d+)\); ms: p50 (\d+)", out)
    assert found is not None, out
    read, unread, p50 = map(int, found.groups())
    assert read > 30 and unread <= read // 10 and 0 < p50 < 1000
