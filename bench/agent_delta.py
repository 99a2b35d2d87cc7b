"""Benchmark: a full agent update against a delta (patch release), over a 300 kbit/s link.

    .venv/bin/python bench/agent_delta.py [--files 1] [--rate-kbps 300]

1. builds the project's wheel with ``pip wheel`` (from a copy of the source), as a release is;
2. stamps a base release 0.2.0 and a patch release 0.2.1 that changes ``--files`` modules
   (``fleet.agent_release.stamp``), and builds the delta with the cloud's own code
   (``common.wire.delta.build``);
3. download time over the link: every payload cut into 1,460-byte TCP segments (+40 bytes
   of TCP/IP headers), pushed through ``cuntong.servers.impair``'s link model at
   ``--rate-kbps`` with 100 ms one-way delay and no loss — the serialisation time of an
   ideal sender (no slow start, no loss, no retransmissions), i.e. computed from the sizes;
4. the terminal's side: the time to apply the delta to an unpacked base slot and check every
   file's hash (``edge.agent_slots.apply_delta``), against unpacking the full wheel.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from common.wire import delta as delta_wire
from common.wire.package import describe
from cuntong.servers.impair import Impairment, Link
from edge import agent_slots
from fleet.agent_release import stamp

ROOT = Path(__file__).resolve().parents[1]
COMMAND = ".venv/bin/python bench/agent_delta.py [--files 1] [--rate-kbps 300]"
SEGMENT, HEADERS = 1460, 40


def build_wheel(out: Path) -> bytes:
    source = out / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".state", "build", "*.egg-info", "__pycache__", ".*_cache"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
    )
    (wheel,) = out.glob("cuntong-*.whl")
    return wheel.read_bytes()


def transfer_s(size: int, rate_kbps: float) -> float:
    link = Link(Impairment(rate_kbps=rate_kbps, delay_ms=100, queue_ms=1e12))
    for start in range(0, size, SEGMENT):
        link.offer(bytes(min(SEGMENT, size - start) + HEADERS), 0.0)
    last = 0.0
    while (due := link.next_due()) is not None:
        link.due(due)
        last = due
    return last


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1, help="modules the patch release changes")
    ap.add_argument("--rate-kbps", type=float, default=300.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheel = build_wheel(work)
        with zipfile.ZipFile(io.BytesIO(wheel)) as z:
            modules = sorted(n for n in z.namelist() if n.startswith("edge/") and n.endswith(".py"))
            changed = {n: z.read(n) + b"\n# patched\n" for n in modules[: a.files]}
        base = stamp(wheel, "0.2.0")
        target = stamp(wheel, "0.2.1", changed)
        t0 = time.perf_counter()
        delta = delta_wire.build("agent", "0.2.0", base, "0.2.1", target)
        build_s = time.perf_counter() - t0

        base_slot = work / "a"
        base_slot.mkdir()
        (work / "base.whl").write_bytes(base)
        agent_slots.unpack(work / "base.whl", base_slot)
        full_slot, delta_slot = work / "b", work / "c"
        full_slot.mkdir()
        (full_slot / "payload").write_bytes(target)
        t0 = time.perf_counter()
        agent_slots.unpack(full_slot / "payload", full_slot)
        unpack_s = time.perf_counter() - t0
        delta_slot.mkdir()
        (delta_slot / "payload").write_bytes(delta)
        (delta_slot / "manifest.json").write_bytes(describe("agent", "0.2.1", delta).to_bytes())
        t0 = time.perf_counter()
        agent_slots.apply_delta(delta_slot / "payload", base_slot, delta_slot)
        apply_s = time.perf_counter() - t0

    full_t, delta_t = transfer_s(len(target), a.rate_kbps), transfer_s(len(delta), a.rate_kbps)
    print(f"command: {COMMAND}")
    print(f"patch release changes {a.files} module(s) + the version stamp")
    print(f"| payload | bytes | at {a.rate_kbps:g} kbit/s | on the terminal |")
    print("|---|---|---|---|")
    print(f"| full wheel | {len(target):,} | {full_t:.1f} s | unpack {unpack_s * 1000:.0f} ms |")
    print(
        f"| delta | {len(delta):,} | {delta_t:.1f} s | apply + check {apply_s * 1000:.0f} ms "
        f"(cloud builds it in {build_s * 1000:.0f} ms) |"
    )
    print(f"delta / full: {100 * len(delta) / len(target):.1f} % of the bytes")


if __name__ == "__main__":
    main()
