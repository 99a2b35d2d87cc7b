"""Benchmark: verify the evidence package of a one-hour teller session, offline.

The session: dual recording cut into 10 s segments (360 files) at ``--kbps`` (500 kbit/s
≈ a 480p 双录 stream), one timeline event per segment plus a link-quality event every 5 s
and the nine password-reset steps (≈ 1,100 events), a voucher image and an e-signature.
Files are sealed (AES-256-GCM or SM4-GCM) as they are at rest. We time building the
package and ``cuntong evidence verify`` (seal, TSA token, chain, every file's sealed digest),
and verification with the data key (also decrypts and re-hashes every plaintext).

    .venv/bin/python bench/evidence.py --kbps 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cloud.evidence import package
from cloud.evidence.chain import Timeline
from cloud.evidence.keys import EvidenceKeys
from cloud.evidence.verify import verify
from common import suite as suite_lib

STEPS = ("dual_recording", "id_card_read", "id_online_check", "liveness", "active_liveness",
         "card_read", "pin_entry", "e_signature", "supervisor_authorisation")  # fmt: skip


def one_hour(directory: Path, keys: EvidenceKeys, suite: suite_lib.Suite, kbps: int) -> Path:
    start = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
    segment = os.urandom(kbps * 1000 // 8 * 10)  # random bytes: nothing compresses or repeats
    timeline = Timeline(suite)
    files = []
    for second in range(0, 3600, 5):
        at = start + dt.timedelta(seconds=second)
        timeline.append("link_quality", "T-1", at, {"rtt_ms": 80, "loss": 0.01, "kbps": kbps})
        if second % 10 == 0:
            name = f"recordings/seg-{second // 10:05d}.webm"
            data = segment[:-8] + second.to_bytes(8, "big")
            files.append(package.EvidenceFile(name, "recording", data))
            digest = suite_lib.digest(suite, data).hex()
            timeline.append("recording_segment", "T-1", at, {"name": name, "digest": digest})
    for step in STEPS:
        timeline.append("step", "t-1", start + dt.timedelta(minutes=59), {"step": step})
    files.append(package.EvidenceFile("voucher-1.jpg", "voucher", os.urandom(300_000)))
    files.append(package.EvidenceFile("esign.png", "e_signature", os.urandom(40_000)))
    doc, sealed = package.build(
        session_id="bench-1h",
        business="password_reset",
        operator={"teller_id": "t-1", "supervisor_id": "s-1"},
        timeline=timeline,
        files=files,
        keys=keys,
        now=start + dt.timedelta(hours=1),
        serial=1,
    )
    return package.write(directory, doc, sealed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kbps", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    keys = EvidenceKeys.generate()
    trust = [keys.seal.public_key(), keys.tsa.public_key()]
    print(f"command: .venv/bin/python bench/evidence.py --kbps {args.kbps} --runs {args.runs}")
    print(f"cpu: {os.cpu_count()} cores (shared), python {sys.version.split()[0]}")
    for suite in suite_lib.Suite:
        base = Path(tempfile.mkdtemp(prefix="cuntong-evidence-"))
        try:
            t0 = time.perf_counter()
            pkg = one_hour(base / "pkg", keys, suite, args.kbps)
            build_s = time.perf_counter() - t0
            seal_only, full = [], []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                report = verify(pkg, trust)
                seal_only.append(time.perf_counter() - t0)
                assert report.ok, report.problems
                t0 = time.perf_counter()
                assert verify(pkg, trust, keys.data_master).ok
                full.append(time.perf_counter() - t0)
            size = sum(f.stat().st_size for f in pkg.rglob("*") if f.is_file())
            print(
                f"{suite.value:8s}: {report.events} events, {report.files} files, "
                f"{size / 1e6:.0f} MB; build {build_s:.2f} s; verify best {min(seal_only):.2f} s "
                f"(median {sorted(seal_only)[len(seal_only) // 2]:.2f} s); with data key "
                f"(decrypt + plaintext hash) best {min(full):.2f} s"
            )
        finally:
            shutil.rmtree(base)


if __name__ == "__main__":
    main()
