"""Fleet ingest benchmark: N terminals on one broker, telemetry into the store.

Starts real Mosquitto, VictoriaMetrics and the cloud API (with its ingest consumer) as child
processes, then connects N lightweight simulated terminals from this process. Each one is a
real MQTT 5 client (aiomqtt/paho) with its own connection, client id, last will and retained
status, publishing real telemetry envelopes at QoS 1; what it leaves out of the full agent is
the spool and the health sampling, so 10,000 fit in one process.

Two phases. The fleet phase: every terminal on its own link sends one sample per --interval
seconds (the real fleet's pattern). The throughput phase: --rate samples/s through a few pooled
publisher connections, to find ingest's ceiling without the load generator's per-connection
cost dominating a 2-core machine.

Reports: connect time, samples/s landed in the store, end-to-end ingest lag p50/p99 (terminal
timestamp → written to the store), memory per simulated terminal, and one real edge agent's
idle CPU and RSS.

    .venv/bin/python bench/fleet_ingest.py [--terminals 10000] [--rate 10000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiomqtt
import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import envelope, procs
from common.topics import Channel, topic
from cuntong.servers.mosquitto import Broker, BrokerConfig
from cuntong.servers.postgres import Postgres
from cuntong.servers.victoria import VictoriaMetrics
from tests.helpers import CloudProcess, start_cloud

METRICS = {"cpu_pct": 12.5, "mem_pct": 31.0, "disk_pct": 40.2, "temp_c": 33.1, "rtt_ms": 80.0}
PERIPHERALS = {"id_reader": "ok", "pin_pad": "ok", "ic_reader": "ok", "camera": "ok"}


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class LightTerminal:
    def __init__(self, tid: str, port: int) -> None:
        self.tid = tid
        self.seq = 0
        offline = envelope.Status(tid, False, 0, {"agent": "bench"}, {}, "bench").to_bytes()
        self.client = aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier=tid,
            protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=300,
            will=aiomqtt.Will(topic(tid, Channel.STATUS), offline, qos=1, retain=True),
            timeout=60,
        )
        self.telemetry_topic = topic(tid, Channel.TELEMETRY)

    async def connect(self) -> None:
        await self.client.__aenter__()
        online = envelope.Status(
            self.tid, True, int(time.time() * 1000), {"agent": "bench"}, {}, "bench"
        )
        await self.client.publish(topic(self.tid, Channel.STATUS), online.to_bytes(), 1, True)

    async def send(self) -> None:
        self.seq += 1
        t = envelope.Telemetry(
            self.tid, self.seq, int(time.time() * 1000), METRICS, PERIPHERALS, {"agent": "bench"}
        )
        await self.client.publish(self.telemetry_topic, t.to_bytes(), qos=1)

    async def close(self) -> None:
        await self.client.__aexit__(None, None, None)


#: Every cloud process running ingest (the first is the one `http` talks to).
INGESTS: list[str] = []
#: Pids whose CPU the throughput phase reports per landed sample.
SERVED: dict[str, list[int]] = {"broker": [], "cloud": []}


async def _ingest_stats(http: httpx.AsyncClient) -> dict[str, object]:
    """Ingest counters summed over every ingest process; lag is the worst process's."""
    each = [(await http.get(f"{url}/healthz")).json()["ingest_stats"] for url in INGESTS]
    lags = [s["lag_ms"] for s in each if s["lag_ms"]]
    rejected: dict[str, int] = {}
    for s in each:
        for reason, n in s["rejected"].items():
            rejected[reason] = rejected.get(reason, 0) + n
    return {
        "points_written": sum(s["points_written"] for s in each),
        "rejected": rejected,
        "lag_ms": {k: max(lag[k] for lag in lags) for k in ("p50", "p99", "max")} if lags else {},
        "per_process_lag_ms": [s["lag_ms"] for s in each] if len(each) > 1 else None,
    }


async def _drain(http: httpx.AsyncClient, base: int, sent: int, wait_s: float) -> int:
    """Wait until ingest has landed ``sent`` points beyond ``base``; return how many did."""
    landed = 0
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        landed = int((await _ingest_stats(http))["points_written"]) - base  # type: ignore[call-overload]
        if landed >= sent:
            break
        await asyncio.sleep(0.1)
    return landed


async def _paced(rate: float, seconds: float, send_batch: Callable[[int], Awaitable[None]]) -> int:
    """Call ``send_batch(n)`` every 100 ms so that ``rate`` messages/s go out; return the count."""
    tick = 0.1
    per_tick = max(1, round(rate * tick))
    sent = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        tick_start = time.perf_counter()
        await send_batch(per_tick)
        sent += per_tick
        spare = tick - (time.perf_counter() - tick_start)
        if spare > 0:
            await asyncio.sleep(spare)
    return sent


async def run_fleet(
    args: argparse.Namespace, broker_port: int, cloud: CloudProcess
) -> dict[str, object]:
    me = psutil.Process()
    rss_before = me.memory_info().rss
    terminals = [LightTerminal(f"B-{i:05d}", broker_port) for i in range(args.terminals)]
    gate = asyncio.Semaphore(200)

    async def connect(t: LightTerminal) -> None:
        async with gate:
            await t.connect()

    started = time.perf_counter()
    await asyncio.gather(*(connect(t) for t in terminals))
    connect_s = time.perf_counter() - started
    rss_per_terminal = (me.memory_info().rss - rss_before) / args.terminals
    result: dict[str, object] = {
        "terminals": args.terminals,
        "connect_s": round(connect_s, 2),
        "sim_rss_per_terminal_kb": round(rss_per_terminal / 1024, 1),
    }

    async with cloud.client() as http:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            page = (await http.get("/api/v1/terminals?status=online&page_size=1")).json()
            if page["total"] >= args.terminals:
                break
            await asyncio.sleep(0.5)
        result["presence_in_api_s"] = round(time.perf_counter() - started, 2)

        # Phase 1, the fleet as it is: every terminal on its own link, one sample every
        # --interval seconds.
        cursor = 0

        async def fleet_batch(n: int) -> None:
            nonlocal cursor
            batch = [terminals[(cursor + i) % len(terminals)] for i in range(n)]
            cursor += n
            await asyncio.gather(*(t.send() for t in batch))

        base = int((await _ingest_stats(http))["points_written"])  # type: ignore[call-overload]
        sent = await _paced(args.terminals / args.interval, args.fleet_seconds, fleet_batch)
        landed = await _drain(http, base, sent, 60)
        stats = await _ingest_stats(http)
        result["fleet_phase"] = {
            "rate_msg_s": round(args.terminals / args.interval),
            "sent": sent,
            "landed": landed,
            "lag_ms": stats["lag_ms"],
        }

        if args.generator == "mosquitto_pub":
            result["throughput_phase"] = await _throughput_mosquitto_pub(args, broker_port, http)
            result["rejected"] = (await _ingest_stats(http))["rejected"]
            await asyncio.gather(*(t.close() for t in terminals), return_exceptions=True)
            return result

        # Phase 2, headroom: --rate samples/s from a few pooled publisher connections (each
        # sample on its own terminal's topic with its own sequence), which is what ingest
        # would see after a county's cell comes back and every spool drains at once.
        publishers = [LightTerminal(f"PUB-{i}", broker_port) for i in range(args.publishers)]
        for p in publishers:
            await p.connect()
        seqs = [t.seq for t in terminals]
        pub_cursor = 0

        async def bulk_batch(n: int) -> None:
            nonlocal pub_cursor
            sends = []
            for i in range(n):
                k = (pub_cursor + i) % len(terminals)
                seqs[k] += 1
                t = envelope.Telemetry(
                    terminals[k].tid,
                    seqs[k],
                    int(time.time() * 1000),
                    METRICS,
                    PERIPHERALS,
                    {"agent": "bench"},
                )
                pub = publishers[i % len(publishers)]
                sends.append(pub.client.publish(terminals[k].telemetry_topic, t.to_bytes(), 1))
            pub_cursor += n
            await asyncio.gather(*sends)

        base = int((await _ingest_stats(http))["points_written"])  # type: ignore[call-overload]
        cpu0, t0 = me.cpu_times(), time.perf_counter()
        sent = await _paced(args.rate, args.seconds, bulk_batch)
        send_s = time.perf_counter() - t0
        cpu1 = me.cpu_times()
        cpu_s = cpu1.user + cpu1.system - cpu0.user - cpu0.system
        report = await _throughput_report(http, base, sent, t0, send_s, cpu_s)
        result["throughput_phase"] = {"publishers": args.publishers, **report}
        result["rejected"] = (await _ingest_stats(http))["rejected"]
        for p in publishers:
            await p.close()
    await asyncio.gather(*(t.close() for t in terminals), return_exceptions=True)
    return result


async def _throughput_mosquitto_pub(
    args: argparse.Namespace, broker_port: int, http: httpx.AsyncClient
) -> dict[str, object]:
    """Phase 2 with Mosquitto's own C client as the load generator.

    ``--publishers`` mosquitto_pub processes, each the MQTT link of one terminal, publish
    every line this process writes to their stdin (``-l``) at QoS 1. Writing a line costs
    this process a few microseconds, so the figure measures broker + ingest + store, not a
    Python load generator.
    """
    binary = procs.find_binary("mosquitto_pub")
    pubs = []
    for i in range(args.publishers):
        tid = f"PUB-{i:03d}"
        proc = await asyncio.create_subprocess_exec(
            binary,
            "-h",
            "127.0.0.1",
            "-p",
            str(broker_port),
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-i",
            tid,
            "-t",
            topic(tid, Channel.TELEMETRY),
            "-l",
            stdin=asyncio.subprocess.PIPE,
        )
        pubs.append((tid, proc))
    await asyncio.sleep(1)  # connected
    seqs = dict.fromkeys((tid for tid, _ in pubs), 0)
    last_ts = dict.fromkeys(seqs, 0)
    cursor = 0

    async def batch(n: int) -> None:
        nonlocal cursor
        now_ms = int(time.time() * 1000)
        lines: dict[str, list[bytes]] = {tid: [] for tid, _ in pubs}
        for i in range(n):
            tid = pubs[(cursor + i) % len(pubs)][0]
            seqs[tid] += 1
            # Distinct timestamps per terminal: the store keeps one sample per millisecond.
            last_ts[tid] = max(now_ms, last_ts[tid] + 1)
            t = envelope.Telemetry(
                tid, seqs[tid], last_ts[tid], METRICS, PERIPHERALS, {"agent": "bench"}
            )
            lines[tid].append(t.to_bytes() + b"\n")
        cursor += n
        for tid, proc in pubs:
            assert proc.stdin is not None
            proc.stdin.write(b"".join(lines[tid]))
        await asyncio.gather(*(p.stdin.drain() for _, p in pubs if p.stdin))

    me = psutil.Process()
    base = int((await _ingest_stats(http))["points_written"])  # type: ignore[call-overload]
    served0 = _served_cpu_s()
    cpu0, t0 = me.cpu_times(), time.perf_counter()
    sent = await _paced(args.rate, args.seconds, batch)
    send_s = time.perf_counter() - t0
    cpu1 = me.cpu_times()
    for _, proc in pubs:
        assert proc.stdin is not None
        proc.stdin.close()
    cpu_s = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    report = await _throughput_report(http, base, sent, t0, send_s, cpu_s)
    # CPU the broker and the cloud processes spent per landed sample: the cost of the path
    # itself, much less sensitive than rates to other jobs sharing the cores.
    served = {k: v - served0[k] for k, v in _served_cpu_s().items()}
    landed = max(1, int(report["landed"]))  # type: ignore[call-overload]
    report["cpu_us_per_landed"] = {k: round(v * 1e6 / landed, 1) for k, v in served.items()}
    for _, proc in pubs:
        await proc.wait()
    return {"generator": f"{args.publishers} × mosquitto_pub -l, QoS 1", **report}


def _served_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) so far of the broker and of all cloud processes."""
    out = {}
    for name, pids in (("broker", SERVED["broker"]), ("cloud", SERVED["cloud"])):
        total = 0.0
        for pid in pids:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        out[name] = total
    return out


async def _throughput_report(
    http: httpx.AsyncClient, base: int, sent: int, t0: float, send_s: float, cpu_s: float
) -> dict[str, object]:
    """Wait for ingest to land what was sent, then the phase's figures."""
    landed = await _drain(http, base, sent, 60)
    landed_s = time.perf_counter() - t0
    stats = await _ingest_stats(http)
    return {
        "sent": sent,
        "send_rate_msg_s": round(sent / send_s),
        "landed": landed,
        "landed_rate_msg_s": round(landed / landed_s),
        "lag_ms": stats["lag_ms"],
        "per_process_lag_ms": stats["per_process_lag_ms"],
        "load_generator_cpu_cores": round(cpu_s / send_s, 2),
    }


def measure_agent(broker_port: int, state: Path, seconds: float) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env |= {
        "CUNTONG_AGENT_TERMINAL_ID": "IDLE-00001",
        "CUNTONG_AGENT_BROKER_PORT": str(broker_port),
        "CUNTONG_AGENT_STATE_DIR": str(state / "idle-agent"),
        "CUNTONG_AGENT_TELEMETRY_INTERVAL_S": "15",
        "CUNTONG_AGENT_SIMULATE": "true",
    }
    proc = procs.start([sys.executable, "-m", "cuntong", "agent"], state / "idle.log", env)
    try:
        time.sleep(5)  # start-up imports are not idling
        p = psutil.Process(proc.pid)
        c0 = p.cpu_times()
        time.sleep(seconds)
        c1 = p.cpu_times()
        cpu = (c1.user + c1.system - c0.user - c0.system) / seconds
        return {
            "agent_idle_cpu_pct_of_core": round(cpu * 100, 2),
            "agent_rss_mb": round(p.memory_info().rss / 2**20, 1),
            "agent_measured_s": seconds,
        }
    finally:
        procs.stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10, help="fleet phase: s per sample")
    parser.add_argument("--fleet-seconds", type=float, default=30)
    parser.add_argument("--rate", type=int, default=10_000, help="throughput phase: msg/s")
    parser.add_argument("--seconds", type=float, default=20, help="throughput phase length")
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument(
        "--generator",
        choices=["mosquitto_pub", "python"],
        default="mosquitto_pub",
        help="throughput phase load generator",
    )
    parser.add_argument("--agent-seconds", type=float, default=60)
    parser.add_argument(
        "--ingest-processes",
        type=int,
        default=1,
        help="cloud processes sharing the telemetry subscription (more than 1: PostgreSQL)",
    )
    args = parser.parse_args()
    _raise_fd_limit()
    state = Path(tempfile.mkdtemp(prefix="cuntong-bench-"))
    broker = Broker(BrokerConfig(port=procs.free_port()), state / "mosquitto").start()
    vm = VictoriaMetrics(procs.free_port(), state / "vm" / "data").start()
    pg = None
    db_url = f"sqlite://{state / 'cloud.sqlite3'}"
    if args.ingest_processes > 1:
        # Several writers: the scale-out database, as deployed.
        pg = Postgres(
            procs.free_port(), Path(tempfile.mkdtemp(prefix="cuntong-pg-")) / "data", durable=True
        )
        pg.start()
        db_url = pg.url
    clouds = [
        start_cloud(
            state,
            db_url,
            broker.cfg.port,
            vm.url,
            create_operator=(i == 0),
            CUNTONG_CLOUD_INGEST_FLUSH_MS="200",
            CUNTONG_CLOUD_INGEST_CLIENT_ID=f"bench-ingest-{i}",
        )
        for i in range(args.ingest_processes)
    ]
    cloud = clouds[0]
    INGESTS.extend(c.url for c in clouds)
    assert broker.proc is not None
    SERVED["broker"].append(broker.proc.pid)
    SERVED["cloud"].extend(c.proc.pid for c in clouds)
    try:
        result = asyncio.run(run_fleet(args, broker.cfg.port, cloud))
        result["cloud_api_ingest_rss_mb"] = round(
            psutil.Process(cloud.proc.pid).memory_info().rss / 2**20, 1
        )
        result |= measure_agent(broker.cfg.port, state, args.agent_seconds)
    finally:
        for c in clouds:
            procs.stop(c.proc)
        vm.stop()
        broker.stop()
        if pg is not None:
            pg.stop()
            pg.remove()
    print(json.dumps(result, indent=2, ensure_ascii=False))
    cmd = " ".join(
        [
            ".venv/bin/python bench/fleet_ingest.py",
            f"--terminals {args.terminals}",
            f"--interval {args.interval:g}",
            f"--fleet-seconds {args.fleet_seconds:g}",
            f"--rate {args.rate}",
            f"--seconds {args.seconds:g}",
            f"--publishers {args.publishers}",
            f"--generator {args.generator}",
            f"--agent-seconds {args.agent_seconds:g}",
            f"--ingest-processes {args.ingest_processes}",
        ]
    )
    print(f"reproduce: {cmd}")


if __name__ == "__main__":
    main()
