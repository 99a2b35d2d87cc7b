"""Concurrent recorded teller calls through the real desk and Janus, and glass-to-glass latency.

Three processes are measured apart (psutil CPU time over a steady window):

- **Janus** (child process, recording every room);
- **the desk** (``bench/desk_server.py``: routing, session states, rooms, tokens, the
  teller API and its WebSockets, the recording archive);
- **the load generator** (this process): for each session a terminal (customer) and a
  teller, each an aiortc peer publishing a 640×360 VP8 clip and an Opus tone that were
  encoded once at start (``av.Packet``s, no encoder), and subscribing to the other side
  with receivers that count reassembled frames instead of decoding them.

Per session: the terminal asks the desk for a teller (bench route standing in for MQTT),
the offer reaches a teller over the API's WebSocket, the teller accepts over HTTP (its
grant is the answer), the terminal gets its grant, both join the room. At each load step
N (default 10, 25, 50) the steady state is measured: CPU per process, packets lost as seen
by every receiver (RTP sequence gaps, before retransmission), frames per second arriving.
Call setup = teller accepts → the first keyframe has arrived on both sides.

A **probe** process runs one more session per step with live-encoded frames carrying the
capture time as a barcode; both sides decode (real VP8 decoders) and read the barcode:
glass-to-glass latency terminal → teller and teller → terminal, including the encoder,
Janus, the jitter buffer and the decoder. Afterwards a sample of the recordings (every
tenth call) is archived by the desk (janus-pp-rec, ffmpeg, ffprobe check) and counted.

    .venv/bin/python bench/calls.py [--steps 10,25,50] [--window 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiortc import RTCPeerConnection
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cuntong import procs
from cuntong.servers.janus import Janus, JanusConfig
from tests.callbench import media
from tests.callbench.legs import Leg

ROOT = Path(__file__).resolve().parents[1]
LOAD, PROBE = "pension", "insurance"  # the desk offers each only to its own tellers


class Tellers:
    """The generator's tellers on the desk: available, each listening on its WebSocket."""

    def __init__(self, http: httpx.AsyncClient, tokens: Sequence[str]) -> None:
        self.http, self.tokens = http, list(tokens)
        self.offers: dict[str, asyncio.Future[str]] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for token in self.tokens:
            ready = asyncio.get_running_loop().create_future()
            self.tasks.append(asyncio.create_task(self._listen(token, ready)))
            await ready
            await self.http.post("/api/v1/teller/me/state", json={"state": "available"},
                                 headers=bearer(token))  # fmt: skip

    async def _listen(self, token: str, ready: asyncio.Future[None]) -> None:
        url = f"{self.http.base_url}".replace("http", "ws", 1).rstrip("/")
        async with connect(f"{url}/api/v1/teller/events?token={token}") as ws:
            ready.set_result(None)
            async for text in ws:
                message = json.loads(text)
                if message["type"] == "offer":
                    self.expect(message["session"]).set_result(token)

    def expect(self, session: str) -> asyncio.Future[str]:
        """Resolves with the token of the teller the session is offered to."""
        return self.offers.setdefault(session, asyncio.get_running_loop().create_future())

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Call:
    session: str
    teller_token: str
    customer: Leg
    teller: Leg
    setup_ms: float
    #: accept answered, terminal has its grant, both joined (published + subscribed), ms
    phases_ms: tuple[float, float, float]


async def place_call(
    http: httpx.AsyncClient,
    tellers: Tellers,
    session: str,
    business: str,
    add_media: Callable[[RTCPeerConnection], None],
) -> Call:
    """A terminal asks, a teller accepts, both join; returns once both see a picture."""
    offered = tellers.expect(session)
    terminal = f"T-{session}"
    body = {"session": session, "terminal": terminal, "business": business}
    (await http.post("/bench/sessions", json=body)).raise_for_status()
    token = await asyncio.wait_for(offered, 30)
    t0 = time.monotonic()
    answer = await http.post(f"/api/v1/teller/sessions/{session}/accept", headers=bearer(token))
    answer.raise_for_status()
    t_accepted = time.monotonic()
    connect_msg = (await http.get(f"/bench/terminals/{terminal}/connect", timeout=40)).json()
    t_granted = time.monotonic()
    customer, teller = await asyncio.gather(
        Leg.join(connect_msg, add_media), Leg.join(answer.json(), add_media)
    )
    t_joined = time.monotonic()
    pictures = (customer.arrivals.picture.wait(), teller.arrivals.picture.wait())
    await asyncio.wait_for(asyncio.gather(*pictures), 30)
    last = max(customer.arrivals.first_picture or 0, teller.arrivals.first_picture or 0)
    phases = tuple((t - t0) * 1e3 for t in (t_accepted, t_granted, t_joined))
    return Call(session, token, customer, teller, (last - t0) * 1e3, phases)  # type: ignore[arg-type]


async def end_call(http: httpx.AsyncClient, call: Call) -> None:
    """The teller hangs up (the desk closes the room and its recording), both leave."""
    path = f"/api/v1/teller/sessions/{call.session}/hang-up"
    (
        await http.post(path, json={"cause": "done"}, headers=bearer(call.teller_token))
    ).raise_for_status()
    await http.post("/api/v1/teller/me/wrap-up-done", headers=bearer(call.teller_token))
    await asyncio.gather(call.customer.leave(), call.teller.leave())


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            out[name] = 0.0
    busy = psutil.cpu_times()
    out["machine"] = sum(busy) - busy.idle - getattr(busy, "iowait", 0.0)
    return out


async def receiver_totals(legs: list[Leg]) -> dict[str, list[int]]:
    totals = {"audio": [0, 0], "video": [0, 0]}
    for leg in legs:
        for kind, (got, lost) in (await leg.received()).items():
            totals[kind][0] += got
            totals[kind][1] += lost
    return totals


def video_frames(legs: list[Leg]) -> tuple[int, int]:
    """Video frames (sent by the clip tracks, arrived at the receivers) over all legs."""
    sent = sum(
        s.track.sent
        for leg in legs
        for s in leg.publisher.getSenders()
        if isinstance(s.track, media.ClipTrack)
    )
    return sent, sum(leg.arrivals.frames["video"] for leg in legs)


def pct(xs: Sequence[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


# -- the probe: one live, decoded session ------------------------------------------------


async def probe(desk_url: str, seconds: float, session: str) -> dict[str, Any]:
    tone = media.Clip([], [], media.encode_tone(2.0))

    def add_media(pc: RTCPeerConnection) -> None:
        pc.addTrack(media.OpusTrack(tone))
        pc.addTrack(media.StampTrack())

    async with httpx.AsyncClient(base_url=desk_url, timeout=30) as http:
        tellers = Tellers(http, ["bench-probe-0"])
        await tellers.start()
        call = await place_call(http, tellers, session, PROBE, add_media)
        await asyncio.sleep(seconds)
        result = {
            "setup_ms": call.setup_ms,
            "phases_ms": call.phases_ms,
            "to_teller_ms": call.teller.arrivals.ages_ms,
            "to_customer_ms": call.customer.arrivals.ages_ms,
        }
        await end_call(http, call)
        await tellers.stop()
    return result


# -- the load generator ------------------------------------------------------------------


@dataclass
class Rig:
    janus: Janus
    desk: subprocess.Popen[bytes]
    desk_url: str
    state: Path


def start_rig(max_calls: int) -> Rig:
    state = Path(tempfile.mkdtemp(prefix="cuntong-bench-calls-"))
    (state / "rec").mkdir()
    cfg = JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1",
                      debug_level=3, session_timeout=120)  # fmt: skip
    janus = Janus(cfg, state / "janus").start()
    port = procs.free_port()
    argv = [
        sys.executable, str(ROOT / "bench" / "desk_server.py"), "--port", str(port),
        "--janus-url", janus.url, "--admin-url", janus.admin_url,
        "--admin-secret", cfg.admin_secret, "--room-key", cfg.room_admin_key,
        "--rec-dir", str(state / "rec"), "--archive-dir", str(state / "archive"),
        "--tellers", str(max_calls), "--probe-tellers", "1",
    ]  # fmt: skip
    desk = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert desk.stdout is not None
    if desk.stdout.readline().strip() != b"ready":
        janus.stop()
        raise RuntimeError("the desk did not start")
    return Rig(janus, desk, f"http://127.0.0.1:{port}", state)


def stop_rig(rig: Rig) -> None:
    rig.desk.terminate()
    rig.desk.wait(10)
    rig.janus.stop()
    shutil.rmtree(rig.state, ignore_errors=True)


async def run_probe(
    rig: Rig, seconds: float, session: str
) -> tuple[asyncio.Task[dict[str, Any]], int]:
    argv = [sys.executable, __file__, "--probe", rig.desk_url, "--window", str(seconds),
            "--session", session]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)

    async def result() -> dict[str, Any]:
        out, _ = await proc.communicate()
        return dict(json.loads(out.decode().strip().splitlines()[-1]))

    return asyncio.create_task(result()), proc.pid


async def step(
    http: httpx.AsyncClient, tellers: Tellers, rig: Rig, n: int, window: float,
    clip: media.Clip, first_id: int,
) -> dict[str, Any]:  # fmt: skip
    limit = asyncio.Semaphore(4)  # calls being set up at once

    async def one(i: int) -> Call:
        async with limit:
            return await place_call(
                http, tellers, f"s{i:04d}", LOAD, lambda pc: media.add_clip(pc, clip)
            )

    assert rig.janus.proc is not None
    ramp_pids = {"janus": rig.janus.proc.pid, "desk": rig.desk.pid}
    t_start, ramp_before = time.monotonic(), cpu_seconds(ramp_pids)
    calls = list(await asyncio.gather(*(one(first_id + i) for i in range(n))))
    ramp, ramp_after = time.monotonic() - t_start, cpu_seconds(ramp_pids)
    # what setting a call up costs each server: CPU ms per call during the ramp
    per_call = {k: (ramp_after[k] - ramp_before[k]) / n * 1e3 for k in ramp_pids}
    await asyncio.sleep(3)  # let the last joins settle
    # The probe calls for longer than the window, so its process is alive at both ends.
    probe_task, probe_pid = await run_probe(rig, window + 2, f"probe{first_id}")
    pids = {"janus": rig.janus.proc.pid, "desk": rig.desk.pid, "load": os.getpid(),
            "probe": probe_pid}  # fmt: skip
    legs = [leg for c in calls for leg in (c.customer, c.teller)]
    before_rx, before_frames = await receiver_totals(legs), video_frames(legs)
    before_cpu, t0 = cpu_seconds(pids), time.monotonic()
    await asyncio.sleep(window)
    after_cpu, wall = cpu_seconds(pids), time.monotonic() - t0
    after_rx, after_frames = await receiver_totals(legs), video_frames(legs)
    probed = await probe_task
    cpu = {k: (after_cpu[k] - before_cpu[k]) / wall * 100 for k in after_cpu}
    loss = {}
    for kind in ("audio", "video"):
        got = after_rx[kind][0] - before_rx[kind][0]
        lost = after_rx[kind][1] - before_rx[kind][1]
        loss[kind] = 100 * lost / max(1, got + lost)
    sent_fps = (after_frames[0] - before_frames[0]) / wall / max(1, len(legs))
    fps = (after_frames[1] - before_frames[1]) / wall / max(1, len(legs))
    await asyncio.gather(*(end_call(http, c) for c in calls))
    setups = [c.setup_ms for c in calls]
    phases = [statistics.median(c.phases_ms[i] for c in calls) for i in range(3)]
    return {"n": n, "ramp_s": ramp, "setup": setups, "phases": phases, "cpu": cpu,
            "loss": loss, "fps": fps, "sent_fps": sent_fps, "probe": probed,
            "per_call": per_call}  # fmt: skip


async def load(steps: list[int], window: float) -> None:
    print(f"machine: {os.cpu_count()} cores; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    t_clip = time.monotonic()
    clip = media.encode_clip()
    took = time.monotonic() - t_clip
    print(f"clip: {len(clip.frames)} VP8 frames 640x360 @ {media.FPS} fps, "
          f"{clip.video_kbps:.0f} kbit/s, encoded once in {took:.1f} s")  # fmt: skip
    media.count_instead_of_decoding()
    rig = start_rig(max(steps))
    results = []
    try:
        async with httpx.AsyncClient(base_url=rig.desk_url, timeout=30) as http:
            tellers = Tellers(http, [f"bench-teller-{i}" for i in range(max(steps))])
            await tellers.start()
            first = 0
            for n in steps:
                results.append(await step(http, tellers, rig, n, window, clip, first))
                first += n
                report(results[-1])
            archived = await wait_archive(http, sum(steps))
            await tellers.stop()
    finally:
        stop_rig(rig)
    ok = [r for r in archived.values() if "error" not in r and len(r["streams"]) == 4]
    print(f"recordings: {len(archived)} sampled calls archived by the desk, {len(ok)} valid "
          f"(4 streams: Opus + VP8 each way, ffprobe-checked)")  # fmt: skip
    for room, r in sorted(archived.items())[:3]:
        print(f"  {room}: {r}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"reproduce: .venv/bin/python bench/calls.py --steps {','.join(map(str, steps))} "
          f"--window {window:g}")  # fmt: skip


async def wait_archive(http: httpx.AsyncClient, calls: int) -> dict[str, Any]:
    expected = (calls + 9) // 10
    for _ in range(120):
        status = (await http.get("/bench/archive")).json()
        if len(status["archived"]) >= expected:
            break
        await asyncio.sleep(0.5)
    return dict(status["archived"])


def report(r: dict[str, Any]) -> None:
    s, c, p, n = r["setup"], r["cpu"], r["probe"], r["n"]
    ours = c["janus"] + c["desk"] + c["load"] + c["probe"]
    lines = [
        f"\n{n} concurrent recorded calls ({2 * n} publishers, {2 * n} subscribers); "
        f"ramp {r['ramp_s']:.1f} s, CPU per call set up: desk {r['per_call']['desk']:.0f} ms, "
        f"janus {r['per_call']['janus']:.0f} ms",
        f"  setup (accept -> keyframe both sides) ms: p50 {pct(s, 0.5):.0f} "
        f"p95 {pct(s, 0.95):.0f} max {max(s):.0f}; medians: accept answered "
        "{:.0f}, terminal grant {:.0f}, both joined {:.0f}".format(*r["phases"]),
        f"  CPU % of one core: janus {c['janus']:.0f}, desk {c['desk']:.0f}, "
        f"load generator {c['load']:.0f}, probe {c['probe']:.0f}; "
        f"machine total {c['machine']:.0f} of 200 (others {c['machine'] - ours:.0f})",
        f"  receivers: packets lost audio {r['loss']['audio']:.2f} %, "
        f"video {r['loss']['video']:.2f} %; {r['fps']:.1f} video frames/s per receiver "
        f"(clip sent at {r['sent_fps']:.1f})",
    ]
    for label, key in (
        ("terminal->teller", "to_teller_ms"),
        ("teller->terminal", "to_customer_ms"),
    ):
        ages = p[key]
        lines.append(
            f"  probe glass-to-glass {label} ms: p50 {pct(ages, 0.5):.0f} "
            f"p95 {pct(ages, 0.95):.0f} p99 {pct(ages, 0.99):.0f} ({len(ages)} frames)"
        )
    lines.append(
        f"  probe call setup (live encode, real decode): {p['setup_ms']:.0f} ms (accept "
        "answered {:.0f}, terminal grant {:.0f}, both joined {:.0f})".format(*p["phases_ms"])
    )
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="10,25,50")
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--probe", metavar="DESK_URL", help=argparse.SUPPRESS)
    parser.add_argument("--session", default="probe", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(asyncio.run(probe(args.probe, args.window, args.session))))
    else:
        asyncio.run(load([int(n) for n in args.steps.split(",")], args.window))


if __name__ == "__main__":
    main()
