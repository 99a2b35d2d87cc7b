"""Failover benchmark (issue 17): SIGKILL the leading API replica behind HAProxy, repeatedly,
and measure how long until the other replica leads and the desk answers again, and how many
requests failed meanwhile.

Real processes: Mosquitto, Janus, VictoriaMetrics, two ``cuntong api`` on one SQLite file
(lease TTL 2 s), HAProxy configured by ``cuntong.deploy.haproxy_config``. Traffic through
HAProxy: two loops on the terminal API (any replica) and one on the desk (the leader only).
Each round kills the leader, waits for the survivor to lead (``/healthz/leader``) and for
the desk to answer through HAProxy, then starts the killed replica again (as a standby).

    .venv/bin/python bench/failover.py [--rounds 5]

It prints per round: takeover (kill -> the survivor leads), desk back (kill -> a desk
request succeeds through HAProxy), failed terminal-API and desk requests; then p50/p99.
What it does not measure: queued customers and live calls across the takeover;
``bench/failover_load.py`` does (200 queued, 50 live calls by default).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import procs
from cuntong.servers.janus import Janus, JanusConfig
from cuntong.servers.mosquitto import Broker, BrokerConfig
from cuntong.servers.victoria import VictoriaMetrics
from tests.ha.rig import (
    DESK_API,
    SUPERVISOR,
    SUPERVISOR_PASSWORD,
    TERMINAL_API,
    Replicas,
    Tally,
    find_leader,
    haproxy,
    token,
    traffic,
)
from tests.helpers import OPERATOR, OPERATOR_PASSWORD


async def _wait(probe, within_s: float = 60.0) -> float:  # type: ignore[no-untyped-def]
    """Poll until ``probe()`` is truthy; the monotonic time it first was."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await probe():
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise TimeoutError("condition not met")


async def run(rounds: int) -> list[dict[str, float]]:
    state = Path(tempfile.mkdtemp(prefix="cuntong-failover-"))
    broker = Broker(BrokerConfig(port=procs.free_port()), state / "mosquitto").start()
    vm = VictoriaMetrics(procs.free_port(), state / "vm" / "data").start()
    cfg = JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1")
    janus = Janus(cfg, state / "janus").start()
    rig = Replicas(state, broker, janus, vm.url).start()
    results = []
    try:
        with haproxy(state, rig.procs) as url:
            ops = await token(url, OPERATOR, OPERATOR_PASSWORD)
            sup = await token(url, SUPERVISOR, SUPERVISOR_PASSWORD)

            async def desk_answers() -> bool:
                async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                    r = await http.get(DESK_API[0], headers={"Authorization": f"Bearer {sup}"})
                    return r.status_code == 200

            for n in range(rounds):
                await _wait(lambda: find_leader(rig.procs))
                await _wait(desk_answers)
                await asyncio.sleep(3)  # the restarted standby passes HAProxy's checks
                fleet, desk, stop = Tally(), Tally(), asyncio.Event()
                loads = [
                    asyncio.create_task(traffic(url, ops, TERMINAL_API, fleet, stop)),
                    asyncio.create_task(traffic(url, ops, TERMINAL_API, fleet, stop)),
                    asyncio.create_task(traffic(url, sup, DESK_API, desk, stop)),
                ]
                await asyncio.sleep(2)
                leader = await find_leader(rig.procs)
                assert leader is not None
                i = rig.procs.index(leader)
                killed = time.monotonic()
                leader.proc.kill()
                leader.proc.wait()
                others = [p for p in rig.procs if p is not leader]
                led = await _wait(lambda: find_leader(others))  # noqa: B023
                back = await _wait(desk_answers)
                await asyncio.sleep(2)
                stop.set()
                await asyncio.gather(*loads)
                row = {
                    "takeover_s": led - killed,
                    "desk_back_s": back - killed,
                    "terminal_ok": fleet.ok,
                    "terminal_failed": fleet.failed,
                    "desk_ok": desk.ok,
                    "desk_failed": desk.failed,
                }
                results.append(row)
                print(
                    f"round {n + 1}: takeover {row['takeover_s']:.2f} s, desk back "
                    f"{row['desk_back_s']:.2f} s; terminal API {fleet.ok} ok / {fleet.failed} "
                    f"failed; desk {desk.ok} ok / {desk.failed} failed",
                    flush=True,
                )
                rig.restart(i)
    finally:
        rig.stop()
        janus.stop()
        vm.stop()
        broker.stop()
    return results


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = asyncio.run(run(args.rounds))
    for key in ("takeover_s", "desk_back_s"):
        values = [r[key] for r in rows]
        print(
            f"{key}: p50 {statistics.median(values):.2f} s, p99 {_pct(values, 0.99):.2f} s, "
            f"max {max(values):.2f} s"
        )
    print(
        f"terminal API failed: {sum(r['terminal_failed'] for r in rows):.0f} of "
        f"{sum(r['terminal_ok'] + r['terminal_failed'] for r in rows):.0f}; desk failed: "
        f"{sum(r['desk_failed'] for r in rows):.0f} of "
        f"{sum(r['desk_ok'] + r['desk_failed'] for r in rows):.0f}"
    )
    print(f"reproduce: .venv/bin/python bench/failover.py --rounds {args.rounds}")


if __name__ == "__main__":
    main()
