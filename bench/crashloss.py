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

``--kill agent`` / ``pause`` / ``api-term``: one real agent *process* (``cuntong agent``,
simulated terminal: a telemetry sample every ``--interval`` s and a customer event about
every other tick) against a plain Mosquitto, the cloud API with ingest on SQLite and
VictoriaMetrics. The bench reads the agent's spool every 10 ms, so it sees every message
the agent queued (a row leaves the spool only once ingest confirms storing it). ``agent``:
SIGKILL the agent the moment a new business event reaches its spool, start it again.
``pause``: SIGSTOP the broker for ``--down`` s, then SIGCONT. ``api-term``: restart the
API as shipped (SIGTERM, then start again) under the load. Between actions ``--every`` s.
Afterwards it waits until everything produced up to then is confirmed and counts, per kind,
what the database and VictoriaMetrics hold against what the spool saw.

    .venv/bin/python bench/crashloss.py --kill agent [--kills 10] [--interval 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
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
from tests.helpers import enrolled_link, secured_cloud, start_cloud
from tests.integration.agents import agent_settings, spawn_agent


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


LOAD_KILLS = ("agent", "pause", "api-term")


def _spool_rows(path: Path) -> list[tuple[int, str, int]]:
    """(seq, kind, ts_ms) of every row in an agent's spool, read-only; [] while the file
    is not there or is locked for a moment."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.05)
    except sqlite3.Error:
        return []
    try:
        return [
            (int(a), str(b), int(c)) for a, b, c in db.execute("SELECT seq, kind, ts_ms FROM spool")
        ]
    except sqlite3.Error:
        return []
    finally:
        db.close()


async def run_load(args: argparse.Namespace) -> None:
    state = Path(tempfile.mkdtemp(prefix="cuntong-loadcrash-"))
    broker = Broker(BrokerConfig(port=procs.free_port()), state / "mosquitto").start()
    vm = VictoriaMetrics(procs.free_port(), state / "vm" / "data").start()
    db_url = f"sqlite://{state / 'crash.sqlite3'}"
    env = {"CUNTONG_CLOUD_INGEST_FLUSH_MS": "200"}
    cloud = start_cloud(state, db_url, broker.cfg.port, vm.url, **env)
    tid = f"LD{args.kill.replace('-', '')}-{int(time.time())}"
    agent_env = {
        "CUNTONG_AGENT_TELEMETRY_INTERVAL_S": str(args.interval),
        "CUNTONG_AGENT_ACK_TIMEOUT_S": str(args.ack_timeout),
        "CUNTONG_AGENT_BACKOFF_BASE_S": "0.2",
        "CUNTONG_AGENT_BACKOFF_CAP_S": "1.0",
        "CUNTONG_AGENT_LINK_STABLE_S": "0",
    }
    spool = state / tid / "spool.sqlite3"
    agent = spawn_agent(state, broker.cfg.port, tid, **agent_env)
    seen: dict[int, tuple[str, int]] = {}
    actions = 0
    try:

        def look() -> list[tuple[int, str, int]]:
            rows = _spool_rows(spool)
            for seq, kind, ts in rows:
                seen[seq] = (kind, ts)
            return rows

        async def watch(seconds: float, kill_on_event: bool) -> bool:
            """Read the spool every 10 ms for ``seconds``; with ``kill_on_event``, return
            True the moment a business event newer than any seen before is in it."""
            last_event = max((s for s, (k, _) in seen.items() if k == "event"), default=0)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for seq, kind, _ in look():
                    if kill_on_event and kind == "event" and seq > last_event:
                        return True
                await asyncio.sleep(0.01)
            return False

        async def reader() -> None:
            """Reads the spool every 10 ms all along, also while the API restarts."""
            while True:
                look()
                await asyncio.sleep(0.01)

        reading = asyncio.create_task(reader())
        await watch(args.every, False)
        for _ in range(args.kills):
            if args.kill == "agent":
                if await watch(args.every * 4, True):
                    os.killpg(agent.pid, signal.SIGKILL)
                    await asyncio.to_thread(agent.wait, 10)
                    agent = spawn_agent(state, broker.cfg.port, tid, **agent_env)
                    actions += 1
            elif args.kill == "pause":
                assert broker.proc is not None
                os.killpg(broker.proc.pid, signal.SIGSTOP)
                await watch(args.down, False)
                os.killpg(broker.proc.pid, signal.SIGCONT)
                actions += 1
            else:
                await asyncio.to_thread(procs.stop, cloud.proc)  # the reader goes on meanwhile
                cloud = await asyncio.to_thread(
                    start_cloud, state, db_url, broker.cfg.port, vm.url, False, **env
                )
                actions += 1
            await watch(args.every, False)
        # Everything queued up to now must be confirmed stored (it leaves the spool).
        cutoff = max(seen)
        stopped = time.monotonic()
        deadline = stopped + args.ack_timeout * 3 + 60
        while time.monotonic() < deadline:
            rows = look()
            if rows and min(s for s, _, _ in rows) > cutoff:
                break
            if not rows and max(seen) >= cutoff:
                break
            await asyncio.sleep(0.05)
        drained_s = time.monotonic() - stopped
        reading.cancel()
        await asyncio.sleep(3)  # VictoriaMetrics makes points searchable after 1 s
        produced = {s: v for s, v in seen.items() if s <= cutoff}
        first = min(produced)
        db = sqlite3.connect(state / "crash.sqlite3")
        try:
            stored_e = [
                seq
                for (seq,) in db.execute(
                    "SELECT seq FROM terminal_event WHERE terminal_id = ?", (tid,)
                )
            ]
        finally:
            db.close()
        reader = TelemetryReader(vm.url)
        try:
            series = await reader.export(f'terminal_cpu_pct{{terminal_id="{tid}"}}')
        finally:
            await reader.close()
        stamps = [t for s in series for t in s["timestamps"]]
        events = {s for s, (k, _) in produced.items() if k == "event"}
        samples = {ts for k, ts in produced.values() if k == "telemetry"}
        stored_in_range = {s for s in stored_e if first <= s <= cutoff}
        # Sequence numbers in the range that the spool reading never saw and that are not
        # stored events: a sample confirmed within 10 ms, or a message lost before the spool.
        unseen = set(range(first, cutoff + 1)) - set(produced) - stored_in_range
    finally:
        procs.stop(agent)
        procs.stop(cloud.proc)
        vm.stop()
        broker.stop()
        shutil.rmtree(state, ignore_errors=True)
    ev_lost = len(events - set(stored_e))
    ev_dup = len(stored_e) - len(set(stored_e))
    s_lost = len(samples - set(stamps))
    s_dup = len(stamps) - len(set(stamps))
    print(
        f"{args.kill}: {actions} actions; events produced {len(events)} stored "
        f"{len(events) - ev_lost} lost {ev_lost} duplicated {ev_dup}; samples produced "
        f"{len(samples)} stored {len(samples) - s_lost} lost {s_lost} duplicated {s_dup}; "
        f"sequence numbers never seen in the spool {len(unseen)}; confirmed {drained_s:.1f} s "
        f"after the last action"
    )
    print(
        f"reproduce: .venv/bin/python bench/crashloss.py --kill {args.kill} --kills {args.kills} "
        f"--interval {args.interval} --every {args.every} --down {args.down} "
        f"--ack-timeout {args.ack_timeout}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill", choices=("api", "broker", *LOAD_KILLS), default="api")
    parser.add_argument("--kills", type=int, default=None, help="default 20 (api), 3 (broker)")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds from publish to kill")
    parser.add_argument("--agents", type=int, default=3, help="broker mode: real agents")
    parser.add_argument("--step", type=float, default=0.03, help="broker mode: s per message")
    parser.add_argument("--every", type=float, default=5.0, help="broker mode: s between kills")
    parser.add_argument("--down", type=float, default=1.0, help="broker mode: s the broker is down")
    parser.add_argument(
        "--ack-timeout", type=float, default=60.0, help="broker mode: the agents' ack_timeout_s"
    )
    parser.add_argument(
        "--interval", type=float, default=0.2, help="agent/pause/api-term: telemetry every s"
    )
    args = parser.parse_args()
    if args.kill in LOAD_KILLS:
        args.kills = 10 if args.kills is None else args.kills
        asyncio.run(run_load(args))
        return
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
