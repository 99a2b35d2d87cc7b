"""Fleet operations benchmark: a command broadcast and a staged rollout to N terminals.

Starts real Mosquitto, VictoriaMetrics and the cloud API (ingest, command sender, rollout
engine) as child processes, then connects N simulated terminals from this process
(``fleet.sim``: one real MQTT 5 connection each, answering commands at once).

Broadcast: one ``ping`` to a group of all N through ``POST /api/v1/fleet/commands``.
Reports when terminals received it and when the API showed each command acknowledged
(succeeded), measured from the POST; the target is 99% acknowledged within 5 s.

Rollout: a staged rollout (canary, then waves) to all N. Each terminal's reply time is the
moment its state changes; the API's target list is polled and the lag until the change is
visible there is reported; the target is every change visible within 2 s.

    .venv/bin/python bench/fleet_ops.py [--terminals 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import procs
from common.wire import live_config
from cuntong.servers.mosquitto import Broker, BrokerConfig
from cuntong.servers.postgres import Postgres
from cuntong.servers.victoria import VictoriaMetrics
from fleet.sim.terminals import SimFleet, SimTerminal
from tests.helpers import start_cloud

REGION = {"province": "陕西省", "city": "宝鸡市", "county": "陈仓区", "village": "东风村"}


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))], 3)


class Replies:
    """When each terminal answered each command (monotonic seconds)."""

    def __init__(self) -> None:
        self.at: dict[tuple[str, str], float] = {}

    def __call__(self, tid: str, name: str, args: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        self.at[(tid, name)] = time.monotonic()
        if name == "set_config":
            # What a real agent answers (edge.handlers.mdm): the configuration it checked,
            # applied and reports back, made with the same schema code.
            applied = live_config.reported(live_config.check(args["config"]))
            return True, {"version": 0, "reported": applied}
        return True, {"version": args.get("version", "")}


async def _all_online(http: httpx.AsyncClient, n: int, prefix: str) -> float:
    started = time.monotonic()
    while True:
        r = await http.get("/api/v1/fleet/overview")
        if r.json()["online"] >= n:
            return time.monotonic() - started
        await asyncio.sleep(0.5)


async def broadcast(http: httpx.AsyncClient, fleet: SimFleet, n: int) -> dict[str, Any]:
    t0 = time.monotonic()
    r = await http.post("/api/v1/fleet/commands", json={"name": "ping", "group": "all"})
    r.raise_for_status()
    batch = r.json()["batch"]
    post_s = time.monotonic() - t0
    acked_at: list[float] = []
    seen = 0
    while time.monotonic() - t0 < 60:
        states = (await http.get(f"/api/v1/fleet/commands/batches/{batch}")).json()["states"]
        done = states.get("succeeded", 0)
        acked_at += [time.monotonic() - t0] * (done - seen)
        seen = done
        if done >= n:
            break
        await asyncio.sleep(0.2)
    received = [
        at - t0 for t in fleet.terminals.values() for name, at in t.received if name == "ping"
    ]
    return {
        "terminals": n,
        "post_s": round(post_s, 3),
        "received_p50_s": _pct(received, 50),
        "received_p99_s": _pct(received, 99),
        "acked_in_api_p50_s": _pct(acked_at, 50),
        "acked_in_api_p99_s": _pct(acked_at, 99),
        "acked_within_5s_pct": round(100 * sum(a <= 5 for a in acked_at) / n, 2),
        "acked_total": len(acked_at),
    }


async def configure(http: httpx.AsyncClient, replies: Replies, n: int) -> dict[str, Any]:
    """The operator's click for a group's configuration: one ``set_config`` to the group
    (``POST /api/v1/fleet/commands``), timed from the POST until the API shows the last
    terminal's reply (the configuration it reports back)."""
    t0 = time.monotonic()
    body = {
        "name": "set_config",
        "group": "all",
        "args": {"config": {"telemetry_interval_s": 30}},
    }
    r = await http.post("/api/v1/fleet/commands", json=body)
    r.raise_for_status()
    batch = r.json()["batch"]
    post_s = time.monotonic() - t0
    done = 0
    while time.monotonic() - t0 < 120:
        states = (await http.get(f"/api/v1/fleet/commands/batches/{batch}")).json()["states"]
        done = states.get("succeeded", 0)
        if done >= n:
            break
        await asyncio.sleep(0.1)
    last_in_api_s = time.monotonic() - t0
    answered = [at - t0 for (_, name), at in replies.at.items() if name == "set_config"]
    return {
        "terminals": n,
        "post_s": round(post_s, 3),
        "reported_total": done,
        "last_terminal_answered_s": round(max(answered), 3) if answered else None,
        "answered_p50_s": _pct(answered, 50),
        "last_visible_in_api_s": round(last_in_api_s, 3),
    }


async def rollout(
    http: httpx.AsyncClient, replies: Replies, n: int, canary: int, wave: int
) -> dict[str, Any]:
    body = {
        "name": "bench",
        "group": "all",
        "action": "set_config",
        "args": {"config": {"bench": True}},
        "rollback_action": None,
        "plan": {
            "canary": canary,
            "wave_size": wave,
            "max_per_minute": 1_000_000,
            "min_finished": 50,
        },
    }
    t0 = time.monotonic()
    r = await http.post("/api/v1/fleet/rollouts", json=body)
    r.raise_for_status()
    rid = r.json()["id"]
    seen: dict[str, float] = {}
    polls = []
    since = datetime.now(UTC)
    while time.monotonic() - t0 < 180:
        started = time.monotonic()
        # Only what changed lately (1 s of slack): the way a live dashboard polls.
        params = {"limit": 10_000, "state": "succeeded", "updated_since": since.isoformat()}
        since = datetime.now(UTC) - timedelta(seconds=1)
        targets = (await http.get(f"/api/v1/fleet/rollouts/{rid}/targets", params=params)).json()
        now = time.monotonic()
        polls.append(now - started)
        for tgt in targets:
            seen.setdefault(tgt["terminal_id"], now)
        if len(seen) >= n:
            break
        await asyncio.sleep(0.25)
    phase = (await http.get(f"/api/v1/fleet/rollouts/{rid}")).json()["phase"]
    lags = [
        at - replies.at[(tid, "set_config")]
        for tid, at in seen.items()
        if (tid, "set_config") in replies.at
    ]
    return {
        "terminals": n,
        "phase": phase,
        "duration_s": round(time.monotonic() - t0, 2),
        "visible_lag_p50_s": _pct(lags, 50),
        "visible_lag_p99_s": _pct(lags, 99),
        "visible_lag_max_s": round(max(lags), 3) if lags else None,
        "within_2s_pct": round(100 * sum(x <= 2 for x in lags) / max(len(lags), 1), 2),
        "api_poll_p50_s": round(statistics.median(polls), 3),
        "note": "lag includes up to one poll interval (0.25 s + poll time)",
    }


class CpuMeter:
    """CPU seconds of each process of the benchmark over a phase (cores = CPU s / wall s)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}

    def _sample(self) -> dict[str, float]:
        out = {}
        for name, proc in self.procs.items():
            total = sum(proc.cpu_times()[:2])
            # The benchmark process's children are the servers, each counted on its own.
            for child in [] if proc.pid == os.getpid() else proc.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += sum(child.cpu_times()[:2])
            out[name] = total
        return out

    @contextlib.contextmanager
    def phase(self, into: dict[str, Any]) -> Iterator[None]:
        before, t0 = self._sample(), time.monotonic()
        load = os.getloadavg()[0]
        yield
        after, wall = self._sample(), time.monotonic() - t0
        into["cpu_cores"] = {k: round((after[k] - before[k]) / wall, 2) for k in after}
        into["load_average_1min"] = [round(load, 2), round(os.getloadavg()[0], 2)]


async def run(
    args: argparse.Namespace, port: int, api: str, token: str, cpu: CpuMeter
) -> dict[str, Any]:
    replies = Replies()
    ids = [f"B{i:05d}" for i in range(args.terminals)]
    async with (
        SimFleet("127.0.0.1", port) as fleet,
        httpx.AsyncClient(
            base_url=api, timeout=60, headers={"Authorization": f"Bearer {token}"}
        ) as http,
    ):
        t0 = time.monotonic()
        await fleet.add([SimTerminal(t, "127.0.0.1", port, replies, REGION) for t in ids])
        connect_s = time.monotonic() - t0
        online_s = await _all_online(http, args.terminals, "B")
        await http.post(
            "/api/v1/fleet/groups", json={"name": "all", "kind": "query", "selector": {"q": "B"}}
        )
        await asyncio.sleep(2)  # let the sender see every retained status
        result: dict[str, Any] = {
            "connect_s": round(connect_s, 2),
            "all_online_in_api_s": round(online_s, 2),
        }
        measured: dict[str, Any] = {}
        if args.config_only:
            print(f"{args.terminals} terminals online; configuration", file=sys.stderr)
            with cpu.phase(measured):
                measured |= await configure(http, replies, args.terminals)
            result["configuration"] = measured
            return result
        print(f"{args.terminals} terminals online; broadcast", file=sys.stderr, flush=True)
        with cpu.phase(measured):
            measured |= await broadcast(http, fleet, args.terminals)
        print("rollout", file=sys.stderr, flush=True)
        result["broadcast"] = measured
        measured = {}
        with cpu.phase(measured):
            measured |= await rollout(http, replies, args.terminals, args.canary, args.wave)
        result["rollout"] = measured
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--canary", type=int, default=100)
    parser.add_argument("--wave", type=int, default=2500)
    parser.add_argument(
        "--config-only", action="store_true", help="only the group configuration change"
    )
    parser.add_argument(
        "--postgres", action="store_true", help="a throw-away PostgreSQL (fsync on) for the cloud"
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    state = Path(tempfile.mkdtemp(prefix="cuntong-bench-fleet-"))
    broker = Broker(BrokerConfig(port=procs.free_port()), state / "mosquitto").start()
    vm = VictoriaMetrics(procs.free_port(), state / "vm" / "data").start()
    pg = None
    db_url = f"sqlite://{state / 'cloud.sqlite3'}"
    if args.postgres:
        # The scale-out database, as deployed (durable commits); its own directory, since
        # the server runs as `postgres`.
        pg = Postgres(
            procs.free_port(), Path(tempfile.mkdtemp(prefix="cuntong-pg-")) / "data", durable=True
        )
        db_url = pg.start().url
    cloud = start_cloud(state, db_url, broker.cfg.port, vm.url)
    try:
        assert broker.proc is not None
        pids = {"cloud": cloud.proc.pid, "broker": broker.proc.pid, "load_generator": os.getpid()}
        cpu = CpuMeter(pids)
        result = asyncio.run(run(args, broker.cfg.port, cloud.url, cloud.token, cpu))
    finally:
        procs.stop(cloud.proc)
        vm.stop()
        broker.stop()
        if pg is not None:
            pg.stop()
            pg.remove()
    result["database"] = "postgresql" if pg else "sqlite"
    print(json.dumps(result, indent=2, ensure_ascii=False))
    print(
        "reproduce: .venv/bin/python bench/fleet_ops.py "
        f"--terminals {args.terminals} --canary {args.canary} --wave {args.wave}"
        + (" --postgres" if args.postgres else "")
        + (" --config-only" if args.config_only else "")
    )


if __name__ == "__main__":
    main()
