"""The call load benchmark runs end to end at the smallest size, so it cannot rot unseen:
Janus, the desk process, a load worker and the live probe, one call each, a recording."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "calls.py"


def test_one_call_each_through_desk_and_janus() -> None:
    argv = [sys.executable, str(BENCH), "--steps", "1", "--window", "2", "--workers", "1",
            "--clip-seconds", "2"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=True).stdout
    assert "1 concurrent recorded calls" in out and "failed to set up" not in out
    frames = re.search(r"([\d.]+) video frames/s per receiver", out)
    assert frames is not None and float(frames.group(1)) > 10
    ages = re.search(r"terminal->teller ms: p50 (\d+) .* \((\d+) frames\)", out)
    assert ages is not None and int(ages.group(2)) > 10 and int(ages.group(1)) < 1000
    archived = re.search(r"recordings: (\d+) sampled calls archived by the desk, (\d+) valid", out)
    assert archived is not None and archived.group(1) == archived.group(2) != "0"
