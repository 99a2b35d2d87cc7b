"""What the broker's refusal plugin costs (issue 21): the secured broker (mTLS, dynamic
security) with and without ``cuntong_refusals`` loaded in front of it.

The plugin's ACL callback is asked first on *every* ACL check (each PUBLISH a client sends,
each delivery to a subscriber), and defers at once for anything that is not a terminal's
SUBSCRIBE, so its cost is one extra callback per check. Each run starts a real Mosquitto
2.0 with ``provisioning.wiring.secure_broker`` (``refusals`` on or off, nothing else
different, persistence off); a ``monitor`` service subscribes to ``cuntong/v1/t/#`` and a
``cloud`` service sends ``--messages`` QoS 1 messages of ``--size`` bytes, 200 in flight,
over mTLS. The run ends when the subscriber has them all. The two variants alternate
``--rounds`` times (the machine is shared). Prints the broker's CPU time per message
(/proc) and messages/s end to end per run, and the median of each variant.

Then, with the plugin, the time from a terminal-like client's refused SUBSCRIBE (SUBACK
0x87) to the plugin's report reaching a subscriber of the report topic, ``--refusals``
times (the report is what ingest counts).

    .venv/bin/python bench/refusal_plugin.py [--messages 20000] [--rounds 3] [--size 200]

Services are ``svc.<name>`` clients, which the callback rejects by their first character
check; a terminal's PUBLISH walks its id (at most 64 characters) before deferring, a few
nanoseconds more.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt

from common import procs
from common.topics import BROKER_REFUSED
from cuntong.servers.mosquitto import Broker
from provisioning import wiring

WINDOW = 200
SERVICES = {"pub": "cloud", "sub": "monitor", "reports": "cloud"}


def cpu_s(pid: int) -> float:
    """The broker's CPU time so far (user + system, /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client(state: Path, port: int, instance: str, **kw: object) -> aiomqtt.Client:
    tls = wiring.service_tls_context(state, instance, dt.datetime.now(dt.UTC))
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        tls_context=tls,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=10,
        **kw,  # type: ignore[arg-type]
    )


async def _load(state: Path, port: int, messages: int, size: int) -> float:
    payload = b"x" * size
    got = 0
    done = asyncio.Event()
    ready = asyncio.Event()

    async def subscriber() -> None:
        nonlocal got
        async with client(state, port, "sub") as c:
            await c.subscribe("cuntong/v1/t/#", qos=1)
            ready.set()
            async for _ in c.messages:
                got += 1
                if got >= messages:
                    done.set()
                    return

    task = asyncio.create_task(subscriber())
    await asyncio.wait_for(ready.wait(), 30)
    start = time.perf_counter()
    async with client(state, port, "pub", max_inflight_messages=WINDOW) as p:
        for first in range(0, messages, WINDOW):
            last = min(first + WINDOW, messages)
            await asyncio.gather(
                *(
                    p.publish(f"cuntong/v1/t/B{n % 50}/cmd/x", payload, qos=1)
                    for n in range(first, last)
                )
            )
        await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - start
    await task
    return messages / elapsed


async def _refusal_latency(state: Path, port: int, times: int) -> list[float]:
    """Seconds from a terminal's SUBSCRIBE to ``$share/...`` (refused, SUBACK 0x87) to the
    plugin's report reaching a subscriber of the report topic."""
    tls = terminal_tls(state)
    got: asyncio.Queue[float] = asyncio.Queue()
    ready = asyncio.Event()

    async def reports() -> None:
        async with client(state, port, "reports") as c:
            await c.subscribe(BROKER_REFUSED, qos=1)
            ready.set()
            async for _ in c.messages:
                got.put_nowait(time.perf_counter())

    task = asyncio.create_task(reports())
    await asyncio.wait_for(ready.wait(), 30)
    out = []
    try:
        async with aiomqtt.Client(
            "127.0.0.1", port, tls_context=tls, protocol=aiomqtt.ProtocolVersion.V5, timeout=10
        ) as t:
            for i in range(times):
                sent = time.perf_counter()
                granted = await t.subscribe(f"$share/ingest/cuntong/v1/t/+/telemetry{i}", qos=1)
                code = int(getattr(granted[0], "value", granted[0]))
                assert code == 0x87, f"expected refusal, got {code:#x}"
                arrived = await asyncio.wait_for(got.get(), 10)
                out.append(arrived - sent)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return out


def terminal_tls(state: Path) -> ssl.SSLContext:
    """A client certificate whose CN is a terminal id (``BENCH-T1``), issued by the
    stack's CA as enrolment would; the terminal has no broker role, so dynamic security
    would refuse everything it asks anyway."""
    from provisioning import ca as ca_lib
    from provisioning.device import client_ssl_context, new_csr
    from provisioning.files import ensure_private_dir, write_private

    now = dt.datetime.now(dt.UTC)
    authority = ca_lib.load_or_create(state, now)
    folder = ensure_private_dir(state / "bench-terminal")
    key = ca_lib.new_key()
    issued = authority.issue_device(new_csr(key, "BENCH-T1"), "BENCH-T1", now)
    write_private(folder / "key.pem", ca_lib.key_pem(key))
    write_private(folder / "cert.pem", issued.chain_pem)
    write_private(folder / "ca.pem", authority.root_pem)
    return client_ssl_context(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")


def run(tmp: Path, plugin: bool, round_: int, args: argparse.Namespace) -> tuple[float, float]:
    state = tmp / f"{'plugin' if plugin else 'dynsec'}-{round_}"
    cfg, _ = wiring.secure_broker(
        state, procs.free_port(), dt.datetime.now(dt.UTC), services=SERVICES, refusals=plugin
    )
    cfg = dataclasses.replace(cfg, persistence=False)
    broker = Broker(cfg, state / "mosquitto").start()
    try:
        assert broker.proc is not None
        before = cpu_s(broker.proc.pid)
        rate = asyncio.run(_load(state, cfg.port, args.messages, args.size))
        cpu = cpu_s(broker.proc.pid) - before
        if plugin and round_ == 0 and args.refusals:
            lat = asyncio.run(_refusal_latency(state, cfg.port, args.refusals))
            lat_ms = sorted(x * 1000 for x in lat)
            print(
                f"refused SUBSCRIBE → plugin report at a subscriber ({len(lat_ms)} times): "
                f"p50 {statistics.median(lat_ms):.2f} ms, max {lat_ms[-1]:.2f} ms"
            )
    finally:
        broker.stop()
    return cpu * 1e6 / args.messages, rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--refusals", type=int, default=50)
    args = ap.parse_args()
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            for plugin in order:
                cpu, rate = run(Path(d), plugin, r, args)
                results[plugin].append((cpu, rate))
                name = "dynsec + refusal plugin" if plugin else "dynsec only"
                print(f"round {r} {name:24} broker CPU {cpu:6.1f} us/msg  {rate:6.0f} msg/s")
    for plugin, rows in results.items():
        name = "dynsec + refusal plugin" if plugin else "dynsec only"
        cpu = statistics.median(c for c, _ in rows)
        rate = statistics.median(r for _, r in rows)
        print(f"median {name:24} broker CPU {cpu:6.1f} us/msg  {rate:6.0f} msg/s")
    print(
        f"reproduce: .venv/bin/python bench/refusal_plugin.py --messages {args.messages} "
        f"--rounds {args.rounds} --size {args.size} --refusals {args.refusals}"
    )


if __name__ == "__main__":
    main()
