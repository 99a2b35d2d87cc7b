"""Teller's confirm to the core's confirmation: p50 / p99 through the real cloud app.

    .venv/bin/python bench/core_posting.py [--n 100]

The cloud app in-process (SQLite, ASGI transport, the real routes and workflow code), the
core simulator as a real process. For each of n card_loss sessions the steps are walked
first (not timed); then the teller's ``POST /workflow/{id}/confirm`` is timed from send to
its answer, which comes after the core has confirmed the posting (write-ahead row, post,
reference onto the timeline) *and* the workflow has completed (evidence package sealed in
the sealer's worker process). Target (issue 20): p99 under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers

from common import procs
from cuntong.servers.corebank import CoreBankServer
from tests.transactions.posting_helpers import (
    cloud_with_core,
    open_account,
    walk_card_loss,
)


def figures(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{name:<28} n={len(ms):<5} p50 {statistics.median(ms):6.2f} ms   "
        f"p99 {p99:6.2f} ms   max {ms[-1]:6.2f} ms"
    )


async def run(server: CoreBankServer, tmp: Path, n: int) -> None:
    await open_account(server, "BENCH-1")
    async with cloud_with_core(tmp, server) as cloud:
        alice = await cloud.client("alice", "teller")
        sup = await cloud.client("sup", "supervisor")
        ms = []
        for i in range(n):
            session = f"B-{i}"
            await walk_card_loss(alice, sup, session)
            t0 = time.perf_counter()
            r = await alice.post(f"/api/v1/workflow/{session}/confirm", json={"account": "BENCH-1"})
            ms.append((time.perf_counter() - t0) * 1e3)
            assert r.status_code == 200 and r.json()["posting"]["status"] == "applied", r.text
    print(figures("confirm → core confirmed", ms))
    slowest = sorted(range(len(ms)), key=lambda i: -ms[i])[:3]
    print("slowest: " + ", ".join(f"#{i} {ms[i]:.0f} ms" for i in slowest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    print(f"# {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"# reproduce: .venv/bin/python bench/core_posting.py --n {args.n}")
    with tempfile.TemporaryDirectory() as tmp:
        server = CoreBankServer(procs.free_port(), Path(tmp) / "core").start()
        try:
            asyncio.run(run(server, Path(tmp), args.n))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
