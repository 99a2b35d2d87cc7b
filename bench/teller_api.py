"""Benchmark: cloud API latency under teller traffic at a fixed request rate (open loop).

Starts ``cuntong api`` as a child process (SQLite by default, or ``--db-url``), creates
``--tellers`` teller accounts and logs them in, then replays a teller's working pattern at
``--rate`` requests/s for ``--seconds``: each teller repeatedly starts a pension-check
session, views it, records its two steps (ID card read, liveness), asks who-am-I, and
finishes it — which seals an evidence package and runs the quality-review draw. Each
teller's requests are sequential (steps have an order); latency is measured from the
request's *scheduled* time, so a slow server is charged for the queueing it causes
(no coordinated omission). The load generator runs on the same 2-core machine.

    .venv/bin/python bench/teller_api.py --rate 200 --seconds 20 --tellers 40
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from cloud.auth import service
from cloud.db import close_db, open_db
from cuntong import procs
from cuntong.servers.postgres import Postgres

PASSWORD = "bench password 1"


async def _accounts(db_url: str, n: int) -> None:
    import datetime as dt

    await open_db(db_url)
    try:
        for i in range(n):
            await service.create_account(f"t{i}", PASSWORD, ["teller"], dt.datetime.now(dt.UTC))
    finally:
        await close_db()


def _ops(session: str) -> list[tuple[str, str, dict[str, object] | None]]:
    base = f"/api/v1/workflow/{session}"
    return [
        ("POST", f"{base}/start", {"business": "pension"}),
        ("GET", base, None),
        ("POST", f"{base}/steps", {"step": "id_card_read"}),
        ("GET", "/api/v1/auth/me", None),
        ("POST", f"{base}/steps", {"step": "liveness", "liveness_score": 93}),
        ("GET", base, None),
        ("POST", f"{base}/finish", {"customer": {"name": "王美娜"}}),
    ]


async def _teller(
    http: httpx.AsyncClient,
    index: int,
    token: str,
    slots: list[float],
    out: list[tuple[str, float]],
) -> None:
    headers = {"authorization": f"Bearer {token}"}
    queue: list[tuple[str, str, dict[str, object] | None]] = []
    sessions = 0
    for slot in slots:
        if not queue:
            sessions += 1
            queue = _ops(f"b-{index}-{sessions}")
        method, path, body = queue.pop(0)
        delay = slot - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        r = await http.request(method, path, json=body, headers=headers)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        out.append(
            (path.rsplit("/", 1)[-1] if method == "POST" else "GET", time.perf_counter() - slot)
        )


async def run(url: str, rate: float, seconds: float, tellers: int) -> list[tuple[str, float]]:
    limits = httpx.Limits(max_connections=tellers, max_keepalive_connections=tellers)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        tokens = []
        for i in range(tellers):
            r = await http.post(
                "/api/v1/auth/login", json={"username": f"t{i}", "password": PASSWORD}
            )
            r.raise_for_status()
            tokens.append(r.json()["token"])
        total = int(rate * seconds)
        start = time.perf_counter() + 0.5
        slots: list[list[float]] = [[] for _ in range(tellers)]
        for i in range(total):
            slots[i % tellers].append(start + i / rate)
        out: list[tuple[str, float]] = []
        await asyncio.gather(*(_teller(http, i, tokens[i], slots[i], out) for i in range(tellers)))
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--tellers", type=int, default=40)
    parser.add_argument("--db-url", default="")
    parser.add_argument(
        "--postgres", action="store_true", help="start a throw-away PostgreSQL (fsync off)"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cuntong-bench-"))
    pg = None
    if args.postgres:
        # Its own directory: the server runs as `postgres`, which cannot enter ours.
        pg = Postgres(procs.free_port(), Path(tempfile.mkdtemp(prefix="cuntong-pg-")) / "data")
        pg.start()
        args.db_url = f"postgres://{pg.user}@{pg.host}:{pg.port}/postgres"
    db_url = args.db_url or f"sqlite://{tmp / 'cloud.sqlite3'}"
    asyncio.run(_accounts(db_url, args.tellers))
    port = procs.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env |= {
        "CUNTONG_CLOUD_DB_URL": db_url,
        "CUNTONG_CLOUD_API_PORT": str(port),
        "CUNTONG_CLOUD_INGEST": "false",
        "TMPDIR": str(tmp),
    }
    proc = procs.start([sys.executable, "-m", "cuntong", "api"], tmp / "api.log", env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        server = psutil.Process(proc.pid)
        before = sum(server.cpu_times()[:2])
        out = asyncio.run(run(url, args.rate, args.seconds, args.tellers))
        cpu_s = sum(server.cpu_times()[:2]) - before
    finally:
        procs.stop(proc)
        if pg is not None:
            pg.stop()
            pg.remove()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"command: .venv/bin/python bench/teller_api.py --rate {args.rate:g} "
        f"--seconds {args.seconds:g} --tellers {args.tellers}"
        + (" --postgres" if pg else f" --db-url {args.db_url}" if args.db_url else "")
    )
    print(
        f"database: {'sqlite' if db_url.startswith('sqlite') else 'postgresql'}; "
        f"{len(out)} requests at {args.rate:g}/s"
    )
    print(
        f"API process CPU: {cpu_s * 1e3 / len(out):.1f} ms per request (incl. logins), "
        f"i.e. at most ~{len(out) / cpu_s:.0f} req/s on one free core"
    )
    for kind in ("all", "GET", "start", "steps", "me", "finish"):
        lat = sorted(v for k, v in out if kind in ("all", k))
        if not lat:
            continue
        q = statistics.quantiles(lat, n=100)
        print(
            f"{kind:7s} n={len(lat):5d}  p50 {q[49] * 1e3:6.1f} ms  p99 {q[98] * 1e3:6.1f} ms  "
            f"max {lat[-1] * 1e3:6.1f} ms"
        )


if __name__ == "__main__":
    main()
