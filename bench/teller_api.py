"""Benchmark: cloud API latency under teller traffic at a fixed request rate (open loop).

Starts ``cuntong api`` as a child process (SQLite by default, or ``--db-url``), creates
``--tellers`` teller accounts and logs them in, then replays a teller's working pattern at
``--rate`` requests/s for ``--seconds``: each teller repeatedly starts a pension-check
session, views it, records its ID card read as failed (device steps pass only on a
terminal's signed result, which this load has no terminal for, so the teller's write is
the failure that rejects the business), asks who-am-I, views it again, and finishes it as
rejected — which seals an evidence package. Each
teller's requests are sequential (steps have an order); latency is measured from the
request's *scheduled* time, so a slow server is charged for the queueing it causes
(no coordinated omission). The load generator runs on the same 2-core machine.

    .venv/bin/python bench/teller_api.py --rate 200 --seconds 20 --tellers 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
from common import procs
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
        ("POST", f"{base}/steps", {"step": "id_card_read", "passed": False}),
        ("GET", "/api/v1/auth/me", None),
        ("GET", base, None),
        ("GET", base, None),
        ("POST", f"{base}/finish", {"outcome": "rejected", "customer": {"name": "王美娜"}}),
    ]


class _Link:
    """One keep-alive HTTP/1.1 connection with hand-written requests.

    The load generator shares the API's two cores; httpx spent ~3 ms of CPU per request
    (0.6 of a core at 200/s), which this spends a fraction of.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str):
        self.reader, self.writer = reader, writer
        self.auth = f"Authorization: Bearer {token}\r\nHost: bench\r\n"

    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\n{self.auth}"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


async def _teller(
    url: str, index: int, token: str, slots: list[float], out: list[tuple[str, float]]
) -> None:
    host, port = url.removeprefix("http://").split(":")
    link = _Link(*await asyncio.open_connection(host, int(port)), token)
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
        payload = None if body is None else json.dumps(body).encode()
        status, text = await link.request(method, path, payload)
        if status >= 400:
            raise RuntimeError(f"{method} {path}: {status} {text!r}")
        out.append(
            (path.rsplit("/", 1)[-1] if method == "POST" else "GET", time.perf_counter() - slot)
        )
    link.writer.close()


async def _login(url: str, tellers: int) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        tokens = []
        for i in range(tellers):
            r = await http.post(
                "/api/v1/auth/login", json={"username": f"t{i}", "password": PASSWORD}
            )
            r.raise_for_status()
            tokens.append(r.json()["token"])
    return tokens


async def run(url: str, rate: float, seconds: float, tokens: list[str]) -> list[tuple[str, float]]:
    tellers = len(tokens)
    print(f"{tellers} tellers logged in; timed run starts", file=sys.stderr, flush=True)
    total = int(rate * seconds)
    start = time.perf_counter() + 0.5
    slots: list[list[float]] = [[] for _ in range(tellers)]
    for i in range(total):
        slots[i % tellers].append(start + i / rate)
    out: list[tuple[str, float]] = []
    await asyncio.gather(*(_teller(url, i, tokens[i], slots[i], out) for i in range(tellers)))
    return out


def _cpu(server: psutil.Process) -> tuple[float, float]:
    """CPU seconds of the API process and of its child processes (the sealing workers)."""
    children = 0.0
    for child in server.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            children += sum(child.cpu_times()[:2])
    return sum(server.cpu_times()[:2]), children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--tellers", type=int, default=40)
    parser.add_argument("--db-url", default="")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="start a throw-away PostgreSQL (fsync on, as deployed)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cuntong-bench-"))
    pg = None
    if args.postgres:
        # Its own directory: the server runs as `postgres`, which cannot enter ours.
        pg = Postgres(
            procs.free_port(), Path(tempfile.mkdtemp(prefix="cuntong-pg-")) / "data", durable=True
        )
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
        tokens = asyncio.run(_login(url, args.tellers))
        server = psutil.Process(proc.pid)
        me = psutil.Process()
        load_before = os.getloadavg()[0]
        before = _cpu(server), sum(me.cpu_times()[:2])
        out = asyncio.run(run(url, args.rate, args.seconds, tokens))
        after = _cpu(server), sum(me.cpu_times()[:2])
        cpu_s = after[0][0] - before[0][0]
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
        f"API process CPU: {cpu_s * 1e3 / len(out):.1f} ms per request, "
        f"i.e. at most ~{len(out) / cpu_s:.0f} req/s on one free core"
    )
    wall = args.seconds + 0.5
    print(
        f"CPU over the run (cores): API {cpu_s / wall:.2f}, its workers (sealing) "
        f"{(after[0][1] - before[0][1]) / wall:.2f}, load generator "
        f"{(after[1] - before[1]) / wall:.2f}; load average 1 min before "
        f"{load_before:.2f}, after {os.getloadavg()[0]:.2f}"
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
