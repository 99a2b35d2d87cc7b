"""Concurrent recorded teller calls through the real desk and Janus, and glass-to-glass latency.

Measured apart (psutil CPU time over a steady window, % of one core):

- **Janus** (child process, recording every room);
- **the desk** (``bench/desk_server.py``: routing, session states, rooms, tokens, the
  teller API and its WebSockets, the recording archive);
- **the load generator**: ``--workers`` processes (``bench/call_worker.py``); for each
  session a terminal (customer) and a teller, each an aiortc peer publishing a 640×360
  VP8 clip and an Opus tone encoded once here at start, and subscribing to the other
  side. aiortc sets every PeerConnection up (ICE, DTLS, SRTP keys, RTCP); the packets
  themselves go out and are counted through ``tests/callbench/fastpath.py`` (prepared
  RTP headers, libsrtp, ``sendto``; on receipt libsrtp, then sequence and frame counters),
  because aiortc's own per-packet Python costs ~7 % of a core per call and would make
  the generator, not the system, the limit (``--aiortc-rtp`` measures that way);
- **the probe**: one more worker with one live call (frames encoded live, carrying their
  capture time as a barcode; both sides decode and read it): glass-to-glass latency
  terminal → teller and back, through the encoder, Janus, the jitter buffer, the decoder.

Per session: the terminal asks the desk for a teller (a bench route standing in for
MQTT), the offer reaches a teller over the API's WebSocket, the teller accepts over HTTP,
the terminal gets its grant, both join. Call setup = accept → first keyframe arrived on
both sides. At each step N (default 10, 20, 30, 40, 50, 60) the steady state is
measured: CPU per process, packets lost as seen by every receiver (RTP sequence gaps,
packets failing SRTP authentication), video frames per second arriving vs sent, how far
the generator's timer runs behind, datagrams the kernel dropped for full receive
buffers. The ramp stops at the first step the machine does not sustain (a call fails to
set up, frames or packets go missing, the generator falls behind a frame). Afterwards
every tenth call's recording is archived by the desk (janus-pp-rec, ffmpeg, ffprobe
check) and counted.

    .venv/bin/python bench/calls.py [--steps 10,20,30,40,50,60] [--window 10] [--workers 2]
        [--janus-loops N] [--aiortc-rtp]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import procs
from cuntong.servers.janus import Janus, JanusConfig
from tests.callbench import media

ROOT = Path(__file__).resolve().parents[1]
#: Business types of different groups, one per load worker; the probe's is the last.
BUSINESSES = ("pension", "account_opening", "card_replacement", "agri_loan", "insurance")


def pct(xs: Sequence[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


@dataclass
class Worker:
    """A ``call_worker.py`` process and its command pipe."""

    proc: asyncio.subprocess.Process
    business: str

    @classmethod
    async def start(cls, desk_url: str, business: str, tellers: int, *flags: str) -> Worker:
        argv = [sys.executable, str(ROOT / "bench" / "call_worker.py"), "--desk", desk_url,
                "--business", business, "--tellers", str(tellers), *flags]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        worker = cls(proc, business)
        await worker._reply()  # {"ready": true}
        return worker

    async def ask(self, cmd: str, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        await self.proc.stdin.drain()
        return await self._reply()

    async def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 300)
        if not line:
            raise RuntimeError(f"worker {self.business} died")
        return dict(json.loads(line))

    async def quit(self) -> None:
        with contextlib.suppress(RuntimeError, ConnectionError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"cmd": "quit"}\n')
            await self.proc.stdin.drain()
        await asyncio.wait_for(self.proc.wait(), 30)


@dataclass
class Rig:
    janus: Janus
    desk: subprocess.Popen[bytes]
    desk_url: str
    state: Path
    workers: list[Worker] = field(default_factory=list)
    probe: Worker | None = None

    def pids(self) -> dict[str, list[int]]:
        assert self.janus.proc is not None and self.probe is not None
        return {
            "janus": [self.janus.proc.pid],
            "desk": [self.desk.pid],
            "load": [w.proc.pid for w in self.workers],
            "probe": [self.probe.proc.pid],
        }


def start_servers(tellers: str, janus_loops: int) -> Rig:
    state = Path(tempfile.mkdtemp(prefix="cuntong-bench-calls-"))
    (state / "rec").mkdir()
    cfg = JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1",
                      debug_level=3, session_timeout=120, event_loops=janus_loops)  # fmt: skip
    janus = Janus(cfg, state / "janus").start()
    port = procs.free_port()
    argv = [
        sys.executable, str(ROOT / "bench" / "desk_server.py"), "--port", str(port),
        "--janus-url", janus.url, "--admin-url", janus.admin_url,
        f"--admin-secret={cfg.admin_secret}", f"--room-key={cfg.room_admin_key}",
        "--rec-dir", str(state / "rec"), "--archive-dir", str(state / "archive"),
        "--tellers", tellers, "--state-dir", str(state),
    ]  # fmt: skip
    desk = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert desk.stdout is not None
    if desk.stdout.readline().strip() != b"ready":
        janus.stop()
        raise RuntimeError("the desk did not start")
    return Rig(janus, desk, f"http://127.0.0.1:{port}", state)


def stop_servers(rig: Rig) -> None:
    rig.desk.terminate()
    rig.desk.wait(10)
    rig.janus.stop()
    shutil.rmtree(rig.state, ignore_errors=True)


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group of processes, and by the whole machine."""
    out = {}
    for name, group in pids.items():
        out[name] = 0.0
        for pid in group:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = psutil.Process(pid).cpu_times()
                out[name] += t.user + t.system + t.children_user + t.children_system
    busy = psutil.cpu_times()
    out["machine"] = sum(busy) - busy.idle - getattr(busy, "iowait", 0.0)
    return out


def udp_drops() -> int:
    """Datagrams the kernel dropped because a receiving socket's buffer was full (v4 + v6):
    on one host, the sign that some receiver (Janus or a generator) did not read in time."""
    drops = 0
    with contextlib.suppress(OSError):
        rows = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
        udp = [r for r in rows if r[0] == "Udp:"]
        drops += int(dict(zip(udp[0], udp[1], strict=True))["RcvbufErrors"])
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/snmp6").read_text().splitlines():
            if line.startswith("Udp6RcvbufErrors"):
                drops += int(line.split()[1])
    return drops


def loss_in_window(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, float]:
    """Packets lost / expected per kind, over the streams received at both snapshots."""
    totals = {"audio": [0, 0], "video": [0, 0]}
    for b, a in zip(before, after, strict=True):
        for key, (kind, got, lost) in a["rx"].items():
            if key in b["rx"]:
                totals[kind][0] += got - b["rx"][key][1]
                totals[kind][1] += lost - b["rx"][key][2]
    return {k: 100 * lost / max(1, got + lost) for k, (got, lost) in totals.items()}


def summed(snaps: list[dict[str, Any]], key: str) -> int:
    return sum(int(s[key]) for s in snaps)


async def step(rig: Rig, n: int, window: float, first_id: int) -> dict[str, Any]:
    """Place n calls over the workers, add the probe's, measure a window, end them all."""
    assert rig.probe is not None
    shares = [n // len(rig.workers) + (i < n % len(rig.workers)) for i in range(len(rig.workers))]
    firsts = [first_id + sum(shares[:i]) for i in range(len(shares))]
    pids = rig.pids()
    ramp_pids = {"janus": pids["janus"], "desk": pids["desk"]}
    t_start, ramp_before = time.monotonic(), cpu_seconds(ramp_pids)
    placed = await asyncio.gather(
        *(w.ask("start", n=k, first=f) for w, k, f in zip(rig.workers, shares, firsts, strict=True))
    )
    ramp, ramp_after = time.monotonic() - t_start, cpu_seconds(ramp_pids)
    per_call = {k: (ramp_after[k] - ramp_before[k]) / max(1, n) * 1e3 for k in ramp_pids}
    probed = await rig.probe.ask("start", n=1, first=first_id + n)
    await asyncio.sleep(2)  # let the last joins settle

    everyone = [*rig.workers, rig.probe]
    before = await asyncio.gather(*(w.ask("snap") for w in everyone))
    cpu_before, t0, drops = cpu_seconds(pids), time.monotonic(), udp_drops()
    await asyncio.sleep(window)
    cpu_after, wall = cpu_seconds(pids), time.monotonic() - t0
    drops = udp_drops() - drops
    after = await asyncio.gather(*(w.ask("snap") for w in everyone))
    await asyncio.gather(*(w.ask("end") for w in everyone))

    load_before, load_after = list(before[:-1]), list(after[:-1])
    legs = max(1, summed(load_after, "legs"))
    skip = {k: len(v) for k, v in before[-1]["ages"].items()}  # ages from inside the window
    return {
        "n": n,
        "ramp_s": ramp,
        "per_call": per_call,
        "setup": [x for p in placed for x in p["setup"]],
        "failed": [x for p in placed for x in p["failed"]],
        "phases": [pct([ph[i] for p in placed for ph in p["phases"]], 0.5) for i in range(3)],
        "cpu": {k: (cpu_after[k] - cpu_before[k]) / wall * 100 for k in cpu_after},
        "loss": loss_in_window(load_before, load_after),
        "udp_drops": drops,
        "sent_fps": (summed(load_after, "sent") - summed(load_before, "sent")) / wall / legs,
        # the generator's timer, over the window: worst and p99 delay behind the schedule
        "late_ms": [max(w["late_ms"][i] for w in load_after) for i in (0, 1)],
        "bad_srtp": summed(load_after, "bad_srtp") - summed(load_before, "bad_srtp"),
        "fps": (summed(load_after, "arrived") - summed(load_before, "arrived")) / wall / legs,
        "probe": {
            "setup_ms": probed["setup"][0] if probed["setup"] else float("nan"),
            "phases_ms": probed["phases"][0] if probed["phases"] else [float("nan")] * 3,
            **{k: v[skip[k] :] for k, v in after[-1]["ages"].items()},
        },
    }


async def wait_archive(http: httpx.AsyncClient, calls: int) -> dict[str, Any]:
    expected = (calls + 9) // 10
    status: dict[str, Any] = {"archived": {}}
    for _ in range(240):
        status = (await http.get("/bench/archive")).json()
        if len(status["archived"]) >= expected:
            break
        await asyncio.sleep(0.5)
    return dict(status["archived"])


async def run(
    steps: list[int], window: float, workers: int, clip_seconds: float, flags: argparse.Namespace
) -> None:
    print(f"machine: {os.cpu_count()} cores; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    t_clip = time.monotonic()
    clip = media.encode_clip(clip_seconds)
    took = time.monotonic() - t_clip
    print(f"clip: {len(clip.frames)} VP8 frames 640x360 @ {media.FPS} fps, "
          f"{clip.video_kbps:.0f} kbit/s + Opus, encoded once in {took:.1f} s; "
          f"{workers} load worker processes")  # fmt: skip
    per_worker = max(steps) // workers + 1
    loads = BUSINESSES[:workers]
    tellers = ",".join([*(f"{b}={per_worker}" for b in loads), f"{BUSINESSES[-1]}=1"])
    rig = start_servers(tellers, flags.janus_loops)
    rtp = ["--aiortc-rtp"] if flags.aiortc_rtp else []
    results = []
    try:
        clip_file = rig.state / "clip.pickle"
        clip_file.write_bytes(pickle.dumps(clip))
        rig.workers = list(
            await asyncio.gather(
                *(
                    Worker.start(rig.desk_url, b, per_worker, "--clip", str(clip_file), *rtp)
                    for b in loads
                )
            )
        )
        rig.probe = await Worker.start(rig.desk_url, BUSINESSES[-1], 1, "--live")
        first = 0
        for n in steps:
            results.append(await step(rig, n, window, first))
            first += n + 1
            print(report(results[-1]), flush=True)
            if why := saturated(results[-1]):
                print(f"  -> saturated at {n} calls ({why}): no larger steps", flush=True)
                break
        async with httpx.AsyncClient(base_url=rig.desk_url, timeout=30) as http:
            archived = await wait_archive(http, first)
        for w in [*rig.workers, rig.probe]:
            await w.quit()
    finally:
        stop_servers(rig)
    ok = [r for r in archived.values() if "error" not in r and len(r["streams"]) == 4]
    print(f"\nrecordings: {len(archived)} sampled calls archived by the desk, {len(ok)} valid "
          f"(4 streams, Opus + VP8 each way, ffprobe-checked); e.g.")  # fmt: skip
    for room, r in sorted(archived.items())[:2]:
        print(f"  {room}: {r}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    extra = (" --aiortc-rtp" if flags.aiortc_rtp else "") + f" --janus-loops {flags.janus_loops}"
    print(f"reproduce: .venv/bin/python bench/calls.py --steps {','.join(map(str, steps))} "
          f"--window {window:g} --workers {workers}{extra}")  # fmt: skip


def saturated(r: dict[str, Any]) -> str:
    """Why this step is past what the machine sustains ("" if it is not)."""
    reasons = []
    if r["failed"]:
        reasons.append(f"{len(r['failed'])} calls failed to set up")
    if abs(r["sent_fps"] - media.FPS) > 0.1 * media.FPS:  # late, or bursting to catch up
        reasons.append("the generator does not keep the frame rate")
    if r["fps"] < 0.9 * media.FPS:
        reasons.append("receivers get under 90 % of the frames")
    if max(r["loss"].values()) > 1.0:
        reasons.append("over 1 % packet loss")
    if r["late_ms"][1] > 1000 / media.FPS:
        reasons.append("the generator's timer runs over a frame late")
    if r["bad_srtp"]:
        reasons.append("receivers got packets that fail SRTP authentication")
    # The targets, for the probe call set up and measured under this load
    if pct(r["probe"]["to_teller"], 0.99) > 150:
        reasons.append("the probe's glass-to-glass p99 passes 150 ms")
    if not r["probe"]["setup_ms"] < 1000:
        reasons.append("the probe's call setup passes 1 s")
    return "; ".join(reasons)


def report(r: dict[str, Any]) -> str:
    s, c, p, n = r["setup"], r["cpu"], r["probe"], r["n"]
    ours = c["janus"] + c["desk"] + c["load"] + c["probe"]
    lines = [
        f"\n{n} concurrent recorded calls ({2 * n} publishers, {2 * n} subscribers) + 1 probe;"
        f" ramp {r['ramp_s']:.1f} s, CPU per call set up: desk {r['per_call']['desk']:.0f} ms,"
        f" janus {r['per_call']['janus']:.0f} ms",
        f"  setup (accept -> keyframe both sides) ms: p50 {pct(s, 0.5):.0f} "
        f"p95 {pct(s, 0.95):.0f} max {max(s, default=0):.0f}; medians: accept answered "
        "{:.0f}, terminal grant {:.0f}, both joined {:.0f}".format(*r["phases"]),
        f"  CPU % of one core: janus {c['janus']:.0f}, desk {c['desk']:.0f}, "
        f"load generator {c['load']:.0f}, probe {c['probe']:.0f}; "
        f"machine total {c['machine']:.0f} of 200 (others {c['machine'] - ours:.0f})",
        f"  receivers: packets lost audio {r['loss']['audio']:.2f} %, "
        f"video {r['loss']['video']:.2f} %; {r['fps']:.1f} video frames/s per receiver "
        f"(clip sent at {r['sent_fps']:.1f}); UDP datagrams dropped by the kernel "
        f"(full receive buffers, whole machine): {r['udp_drops']}; "
        f"failing SRTP: {r['bad_srtp']}",
        f"  generator timer behind schedule: p99 {r['late_ms'][1]:.1f} ms, "
        f"worst {r['late_ms'][0]:.1f} ms",
    ]
    if r["failed"]:
        lines.append(f"  {len(r['failed'])} calls failed to set up, e.g. {r['failed'][0]}")
    for label, key in (("terminal->teller", "to_teller"), ("teller->terminal", "to_customer")):
        ages = p[key]
        lines.append(
            f"  probe glass-to-glass {label} ms: p50 {pct(ages, 0.5):.0f} "
            f"p95 {pct(ages, 0.95):.0f} p99 {pct(ages, 0.99):.0f} ({len(ages)} frames)"
        )
    lines.append(
        f"  probe call setup (live encode, real decode): {p['setup_ms']:.0f} ms (accept "
        "answered {:.0f}, terminal grant {:.0f}, both joined {:.0f})".format(*p["phases_ms"])
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="10,20,30,40,50,60")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2, choices=range(1, 5))
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--janus-loops", type=int, default=os.cpu_count() or 1,
                        help="Janus event_loops, as cuntong up sets it (default: one per "
                        "core; 0: Janus's own default, a thread per handle)")  # fmt: skip
    parser.add_argument("--aiortc-rtp", action="store_true",
                        help="simulated peers send and count through aiortc's own RTP path "
                        "(~7 %% of a core per call) instead of fastpath.py")  # fmt: skip
    args = parser.parse_args()
    steps = [int(n) for n in args.steps.split(",")]
    asyncio.run(run(steps, args.window, args.workers, args.clip_seconds, args))


if __name__ == "__main__":
    main()
