"""Crash-loss benchmark (issue 14): SIGKILL the cloud API (``--kill api``) or the broker
(``--kill broker``) and count what was stored.

``--kill api`` (default): SIGKILL the cloud API, with its ingest consumer, shortly
after a terminal's messages, restart it on the same database, and count what was stored.

Real Mosquitto (persistent sessions), VictoriaMetrics and the cloud API on SQLite, as child
processes. Each round publishes one event and one telemetry sample at QoS 1 (the broker has
both once the publish returns), waits --delay seconds, kills the API with SIGKILL and starts it
again. At the end it prints, per kill, messages produced, stored, lost and duplicated.

    .venv/bin/python bench/crashloss.py [--kills 20] [--delay 0.05]

``--kill broker``: the secured stack (mTLS broker with dynamic security, cloud API with ingest
on SQLite, VictoriaMetrics) and ``--agents`` real enrolled edge agents in this process, each
producing a telemetry sample (every fourth message a business event) every ``--step`` s. Every
``--every`` s the broker is killed with SIGKILL and started again ``--down`` s later on the same
state. After the last kill the load stops; the bench waits until every agent's spool is empty
(everything confirmed stored) and counts events in the database and samples in
VictoriaMetrics against what the agents produced.

    .venv/bin/python bench/crashloss.py --kill broker [--kills 3] [--agents 3] [--step 0.03]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.security import broker_services
from cloud.tsdb import TelemetryReader
from common import procs
from cuntong.servers.mosquitto import Broker, BrokerConfig
from cuntong.servers.victoria import VictoriaMetrics
from edge.agent import Agent
from tests.crashrig import CrashRig, Round, Tally, produce
from tests.helpers import enrolled_link, secured_cloud
from tests.integration.agents import agent_settings


async def run(kills: int, delay_s: float) -> list[Tally]:
    state = Path(tempfile.mkdtemp(prefix="cuntong-crash-"))
    broker = Broker(BrokerConfig(port=procs.free_port()), state / "mosquitto").start()
    vm = VictoriaMetrics(procs.free_port(), state / "vm" / "data").start()
    rig = CrashRig.start(state, broker.cfg.port, vm.url, f"CRASH-{int(time.time())}")
    try:
        rounds: list[Round] = []
        for kill in range(kills):
            rounds.append(await rig.kill_after_message(kill, delay_s))
        # Give the last restarted ingest time to take its redelivered backlog.
        deadline = time.monotonic() + 30
        while True:
            tallies = await rig.tally(rounds)
            if all(t.lost == 0 for t in tallies) or time.monotonic() > deadline:
                return tallies
            await asyncio.sleep(0.5)
    finally:
        rig.stop()
        vm.stop()
        broker.stop()
        shutil.rmtree(state, ignore_errors=True)


async def run_broker(args: argparse.Namespace) -> None:
    state = Path(tempfile.mkdtemp(prefix="cuntong-brokercrash-"))
    vm = VictoriaMetrics(procs.free_port(), state / "vm" / "data").start()
    stop = asyncio.Event()
    agents: list[Agent] = []
    runs: list[asyncio.Task[None]] = []
    try:
        with secured_cloud(state, vm.url, broker_services("api")) as (_, broker, cloud):
            for i in range(args.agents):
                tid = f"BKB{i}-{int(time.time())}"
                settings = agent_settings(
                    state, 1, tid, simulate=False, telemetry_interval_s=3600,
                    ack_timeout_s=args.ack_timeout,
                )  # fmt: skip
                link = await enrolled_link(cloud.url, settings.state_dir, tid)
                agents.append(Agent(settings, link=link))
            runs = [asyncio.create_task(a.run()) for a in agents]
            for a in agents:
                await asyncio.wait_for(a.connected.wait(), 15)
            samples: list[dict[int, int]] = [{} for _ in agents]
            events: list[list[int]] = [[] for _ in agents]
            loads = [
                asyncio.create_task(produce(a, stop, samples[i], events[i], args.step))
                for i, a in enumerate(agents)
            ]
            for _ in range(args.kills):
                await asyncio.sleep(args.every)
                broker.kill()
                await asyncio.sleep(args.down)
                broker.start()
            await asyncio.sleep(args.every)
            stop.set()
            await asyncio.gather(*loads)
            stopped = time.monotonic()
            deadline = stopped + args.ack_timeout * 3 + 60
            while any(a.spool.depth() for a in agents) and time.monotonic() < deadline:  # noqa: ASYNC110 - polling spools on disk
                await asyncio.sleep(0.5)
            empty_s = time.monotonic() - stopped
            left = sum(a.spool.depth() for a in agents)
            await asyncio.sleep(3)  # VictoriaMetrics makes points searchable after 1 s
            db = sqlite3.connect(state / "cloud.sqlite3")
            reader = TelemetryReader(vm.url)
            rows = []
            try:
                for a, produced_s, produced_e in zip(agents, samples, events, strict=True):
                    stored_e = [
                        seq
                        for (seq,) in db.execute(
                            "SELECT seq FROM terminal_event WHERE terminal_id = ?", (a.tid,)
                        )
                    ]
                    series = await reader.export(f'terminal_cpu_pct{{terminal_id="{a.tid}"}}')
                    stamps = [t for s in series for t in s["timestamps"]]
                    want = set(produced_s.values())
                    rows.append(
                        (
                            a.tid,
                            len(produced_e),
                            len(set(produced_e) - set(stored_e)),
                            len(stored_e) - len(set(stored_e)),
                            len(want),
                            len(want - set(stamps)),
                            len(stamps) - len(set(stamps)),
                            a.resends,
                        )
                    )
            finally:
                db.close()
                await reader.close()
    finally:
        stop.set()
        for a in agents:
            a.stop()
        await asyncio.gather(*runs, return_exceptions=True)
        vm.stop()
        shutil.rmtree(state, ignore_errors=True)
    print("terminal          events  lost  dup   samples  lost  dup  resend-passes")
    for r in rows:
        counts = "  ".join(f"{n:{w}d}" for n, w in zip(r[1:], (6, 4, 3, 8, 4, 3, 13), strict=True))
        print(f"{r[0]:16s}  {counts}")
    tot = [sum(r[i] for r in rows) for i in range(1, 8)]
    print(
        f"total events {tot[0]} lost {tot[1]} duplicated {tot[2]}; samples {tot[3]} lost "
        f"{tot[4]} duplicated {tot[5]}; {args.kills} broker kills; spools empty "
        f"{empty_s:.1f} s after the load stopped ({left} rows left)"
    )
    print(
        f"reproduce: .venv/bin/python bench/crashloss.py --kill broker --kills {args.kills} "
        f"--agents {args.agents} --step {args.step} --every {args.every} --down {args.down} "
        f"--ack-timeout {args.ack_timeout}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill", choices=("api", "broker"), default="api")
    parser.add_argument("--kills", type=int, default=None, help="default 20 (api), 3 (broker)")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds from publish to kill")
    parser.add_argument("--agents", type=int, default=3, help="broker mode: real agents")
    parser.add_argument("--step", type=float, default=0.03, help="broker mode: s per message")
    parser.add_argument("--every", type=float, default=5.0, help="broker mode: s between kills")
    parser.add_argument("--down", type=float, default=1.0, help="broker mode: s the broker is down")
    parser.add_argument(
        "--ack-timeout", type=float, default=60.0, help="broker mode: the agents' ack_timeout_s"
    )
    args = parser.parse_args()
    if args.kill == "broker":
        args.kills = 3 if args.kills is None else args.kills
        asyncio.run(run_broker(args))
        return
    args.kills = 20 if args.kills is None else args.kills
    tallies = asyncio.run(run(args.kills, args.delay))
    print("kill  produced  stored  lost  duplicated")
    for t in tallies:
        print(f"{t.kill:4d}  {t.produced:8d}  {t.stored:6d}  {t.lost:4d}  {t.duplicated:10d}")
    total = {k: sum(getattr(t, k) for t in tallies) for k in ("produced", "stored", "lost")}
    dup = sum(t.duplicated for t in tallies)
    print(
        f"total produced {total['produced']}, stored {total['stored']}, lost {total['lost']}, "
        f"duplicated {dup}"
    )
    print(
        f"reproduce: .venv/bin/python bench/crashloss.py --kills {args.kills} --delay {args.delay}"
    )


if __name__ == "__main__":
    main()
