"""Crash-loss benchmark (issue 14): SIGKILL the cloud API, with its ingest consumer, shortly
after a terminal's messages, restart it on the same database, and count what was stored.

Real Mosquitto (persistent sessions), VictoriaMetrics and the cloud API on SQLite, as child
processes. Each round publishes one event and one telemetry sample at QoS 1 (the broker has
both once the publish returns), waits --delay seconds, kills the API with SIGKILL and starts it
again. At the end it prints, per kill, messages produced, stored, lost and duplicated.

    .venv/bin/python bench/crashloss.py [--kills 20] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import procs
from cuntong.servers.mosquitto import Broker, BrokerConfig
from cuntong.servers.victoria import VictoriaMetrics
from tests.crashrig import CrashRig, Round, Tally


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds from publish to kill")
    args = parser.parse_args()
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
