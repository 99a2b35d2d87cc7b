"""What counting refused SUBSCRIBEs costs (issue 21): the broker's ``refusal_log``
(debug-level logging to a file, ``provisioning.brokerlog``) against the normal log.

Starts a real Mosquitto twice on loopback (plain MQTT, no TLS or plugin: the cost being
measured is the logging), once with the stack's usual log types and once with the
``REFUSAL_LOG`` lines and a log file. Each run: ``--subscribers`` clients subscribe to
the topic, one publisher sends ``--messages`` QoS 1 messages of ``--size`` bytes, 200 in
flight at a time, and the run ends when every subscriber has them all. Prints messages/s
end to end, the broker's CPU time per message (/proc), log bytes and lines per
message, and how fast ``fleet.brokerwatch`` reads
such a log (lines/s through ``LogFollower`` and ``RefusalLog``).

    .venv/bin/python bench/refusal_log.py [--messages 20000] [--subscribers 1] [--size 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt

from common import procs
from cuntong.servers.mosquitto import Broker
from fleet.brokerwatch import LogFollower
from provisioning.broker import BrokerConfig
from provisioning.brokerlog import REFUSAL_LOG, RefusalLog

#: QoS 1 publishes in flight at once (as a busy ingest path has).
WINDOW = 200


async def _run(port: int, messages: int, subscribers: int, size: int) -> float:
    payload = b"x" * size
    got = [0] * subscribers
    done = asyncio.Event()

    async def subscriber(i: int, ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"sub-{i}") as c:
            await c.subscribe("bench/#", qos=1)
            ready.set()
            async for _ in c.messages:
                got[i] += 1
                if all(n >= messages for n in got):
                    done.set()
                if got[i] >= messages:
                    return

    readies = [asyncio.Event() for _ in range(subscribers)]
    tasks = [asyncio.create_task(subscriber(i, r)) for i, r in enumerate(readies)]
    for r in readies:
        await r.wait()
    start = time.perf_counter()
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="pub", max_inflight_messages=WINDOW
    ) as p:
        for first in range(0, messages, WINDOW):  # a window of QoS 1 publishes in flight
            last = min(first + WINDOW, messages)
            await asyncio.gather(
                *(p.publish(f"bench/{n % 50}", payload, qos=1) for n in range(first, last))
            )
        await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - start
    await asyncio.gather(*tasks)
    return messages / elapsed


def run(args: argparse.Namespace, refusal_log: bool, tmp: Path) -> tuple[float, int, int, Path]:
    state = tmp / ("debug" if refusal_log else "normal")
    state.mkdir()
    log_file = state / "broker.log"
    cfg = BrokerConfig(
        port=procs.free_port(),
        persistence=False,
        extra_lines=REFUSAL_LOG if refusal_log else (),
        log_file=str(log_file),
    )
    broker = Broker(cfg, state).start()
    try:
        assert broker.proc is not None
        before = cpu_s(broker.proc.pid)
        rate = asyncio.run(_run(cfg.port, args.messages, args.subscribers, args.size))
        cpu = cpu_s(broker.proc.pid) - before
    finally:
        broker.stop()
    data = log_file.read_bytes()
    return rate, cpu, len(data), data.count(b"\n"), log_file


def cpu_s(pid: int) -> float:
    """The broker's CPU time so far (user + system, /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_rate(log_file: Path) -> float:
    follower, parser = LogFollower(log_file, from_start=True), RefusalLog()
    start, lines = time.perf_counter(), 0
    while batch := follower.read():
        lines += len(batch)
        for line in batch:
            parser.feed(line)
    follower.close()
    return lines / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--subscribers", type=int, default=1)
    ap.add_argument("--size", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = {mode: run(args, mode == "refusal_log", tmp) for mode in ("normal", "refusal_log")}
        per = args.messages
        for mode, (rate, cpu, size, lines, _) in rows.items():
            print(
                f"{mode:12} broker CPU {cpu * 1e6 / per:6.1f} us/msg   {rate:6.0f} msg/s end to"
                f" end   log {size / per:6.1f} B/msg {lines / per:5.2f} lines/msg"
            )
        extra = rows["refusal_log"][1] / max(rows["normal"][1], 1e-9) - 1
        print(f"broker CPU per message with refusal_log: {extra:+.0%}")
        rate = parse_rate(rows["refusal_log"][4])
        print(f"brokerwatch reads the debug log at {rate:,.0f} lines/s")
    print(
        "reproduce: .venv/bin/python bench/refusal_log.py "
        f"--messages {args.messages} --subscribers {args.subscribers} --size {args.size}"
    )


if __name__ == "__main__":
    main()
