"""Core adapter latency: a debit posting through the adapter to the core simulator, p50 / p99.

    .venv/bin/python bench/corebank_latency.py [--n 500]

One client, postings one after another, each a new session (a new idempotency key) against
the real simulator (its own SQLite, loopback HTTP); then the same postings again, which the
core answers as duplicates, and reconcile queries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from common import procs
from corebank import CoreBankClient, Posting
from cuntong.servers.corebank import CoreBankServer


def figures(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{name:<28} n={len(ms):<5} p50 {statistics.median(ms):6.2f} ms   "
        f"p99 {p99:6.2f} ms   max {ms[-1]:6.2f} ms"
    )


async def timed(calls: list[Callable[[], Awaitable[object]]]) -> list[float]:
    out = []
    for call in calls:
        t0 = time.perf_counter()
        await call()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


async def run(server: CoreBankServer, n: int) -> None:
    headers = {"Authorization": f"Bearer {server.secret}"}
    body = {"account": "BENCH", "balance_fen": 10**11}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
        (await http.post("/v1/accounts", json=body)).raise_for_status()
    postings = [
        Posting(f"S-{i}", "withdrawal", "debit", "BENCH", "6217***********5672", 100,
                proofs={"arqc_verified": True, "pin_verified": True})
        for i in range(n)
    ]  # fmt: skip
    async with CoreBankClient(server.url, server.secret) as core:
        first = await timed([lambda p=p: core.post(p) for p in postings])
        again = await timed([lambda p=p: core.post(p) for p in postings])
        rec = await timed([lambda p=p: core.reconcile(p.key) for p in postings])
    print(figures("post (applied)", first))
    print(figures("post (duplicate)", again))
    print(figures("reconcile", rec))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    print(f"# {platform.node()} {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"# reproduce: .venv/bin/python bench/corebank_latency.py --n {args.n}")
    with tempfile.TemporaryDirectory() as tmp:
        server = CoreBankServer(procs.free_port(), Path(tmp) / "core").start()
        try:
            asyncio.run(run(server, args.n))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
