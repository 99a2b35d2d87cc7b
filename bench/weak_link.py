"""The terminal's call over a village link: 300 kbit/s, 200 ms RTT, 3% loss, with and without
2 s outages, measured for as long as a real consultation (2 minutes by default).

Real Janus and coturn; the terminal's own ``TellerClient``/``RoomPeer``/``CallMedia`` with
relay-only ICE through the user-space impairment relay (``cuntong.servers.udprelay``) in
front of coturn, so every packet of the terminal's call crosses the impaired link in both
directions; the teller is an aiortc peer on loopback (``tests/teller/weaklink.py``).
Measured at the teller, on what it decoded from the terminal:

- setup:      connect message handed to the terminal -> the teller decodes the first frame
- freezes:    gaps between decoded video frames over 500 ms (count, longest)
- fps:        decoded video frames per second over the whole call
- audio:      holes in the decoded audio timeline (aiortc's decoder conceals nothing, so
              this is what reached the decoder after Opus FEC: see docs/benchmarks.md)
- adaptation: the terminal's sent kbit/s and its link-rate estimate every 5 s
- face found: BlazeFace on every 3rd decoded frame (the terminal's own detector model)

With ``--teller chromium`` the teller is the production one: the teller page's
``teller-media.js`` in headless Chromium (``tests/teller/browser_weaklink.py``), measured
from inside the browser: the frames its ``<video>`` element presented
(``requestVideoFrameCallback``), the subscription's ``getStats()`` every 100 ms (freezeCount,
totalFreezesDuration, framesPerSecond, jitterBufferDelay, concealedSamples /
totalSamplesReceived, concealment events), and BlazeFace on every 3rd presented frame
drawn into a canvas.

    .venv/bin/python bench/weak_link.py [seconds] [--outages-every S] [--teller chromium]
                                        [--retransmit-limit S] [--retransmit-rate KBPS]
                                        [--media-nice N] [--infra-nice N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from common import procs
from common.settings import AgentSettings
from cuntong.deploy import CALL_MEDIA_NICE
from cuntong.servers.coturn import Coturn, CoturnConfig
from cuntong.servers.janus import Janus, JanusConfig
from edge.teller import jitter, retransmit
from edge.teller.jitter import VideoJitterBuffer
from edge.teller.priority import EXECUTOR_PREFIX, thread_nice
from edge.vision import pipeline
from edge.vision.runtime import ModelSet
from tests.teller.browser import CHROMIUM, FLAGS, serve_page
from tests.teller.browser_weaklink import (
    concealments,
    frame_gaps,
    png_rgb,
    stats_delta,
    weak_browser_call,
)
from tests.teller.conftest import host_address
from tests.teller.weaklink import audio_gaps, concealed_runs, freezes, village, weak_call

SAMPLE_EVERY_S = 5.0
LAG_EVERY_S = 0.05


class LoopLag:
    """How late the terminal's event loop thread wakes (it sends the call's RTP): a sleep of
    50 ms that comes back late by X waited X for the CPU or for other work on the loop."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self._taken = 0
        self._task: Any = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_EVERY_S
            await asyncio.sleep(LAG_EVERY_S)
            self.late.append(loop.time() - due)

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Probe the running loop, or ``loop`` on another thread (the relay's)."""
        if loop is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        else:
            self._task = asyncio.run_coroutine_threadsafe(self._run(), loop)

    def interval_max_ms(self) -> int:
        """The worst lateness since the last call (ms)."""
        new, self._taken = self.late[self._taken :], len(self.late)
        return round(1000 * max(new, default=0))

    def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
        late = sorted(self.late)
        at = lambda q: round(1000 * late[min(len(late) - 1, int(q * len(late)))]) if late else 0  # noqa: E731
        return {
            "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(1000 * max(late, default=0)),
            "over_100ms": sum(x > 0.1 for x in late), "over_500ms": sum(x > 0.5 for x in late),
        }  # fmt: skip


def privilege() -> str:
    """What the bench process may do about priorities (it runs the terminal's call code)."""
    caps = dict(
        line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("Cap")
    )  # fmt: skip
    nice_cap = bool(int(caps.get("CapEff", "0"), 16) & (1 << 23))  # CAP_SYS_NICE
    eff = caps.get("CapEff", "?").strip()
    return f"uid {os.getuid()}, CAP_SYS_NICE {'yes' if nice_cap else 'no'} (CapEff {eff})"


def renice_infrastructure(nice: int) -> int:
    """``--infra-nice``: every thread of the bench's child processes (Janus, coturn, the
    Playwright driver, Chromium) and the relay's thread at ``nice`` (never lowering a
    priority a process gave itself: Chromium runs its browser and GPU threads at -8).
    In a deployment none of them shares the terminal's CPU: TURN, Janus and the teller's
    browser run elsewhere and the relay stands for the network. Returns the threads set."""
    import threading

    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, pids = [os.getpid()], []
    while todo:
        for child in children.get(todo.pop(), []):
            pids.append(child)
            todo.append(child)
    tids = [t.native_id for t in threading.enumerate() if t.name == "udprelay" and t.native_id]
    for pid in pids:
        tids += [int(t.name) for t in Path(f"/proc/{pid}/task").glob("[0-9]*")]
    done = 0
    for tid in tids:
        try:
            if thread_nice(tid) > nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            done += 1
        except OSError:
            continue  # ended meanwhile
    return done


def media_threads() -> dict[str, int]:
    """The nice value of the terminal's loop thread and encoder (executor) threads, now."""
    import threading

    out = {"loop": thread_nice(threading.get_native_id())}
    for t in threading.enumerate():
        if t.name.startswith(EXECUTOR_PREFIX) and t.native_id is not None:
            out[t.name] = thread_nice(t.native_id)
        elif t.name == "udprelay" and t.native_id is not None:
            out["relay"] = thread_nice(t.native_id)
    return out


async def sent_bytes(pc: Any) -> int:
    return sum(
        getattr(s, "bytesSent", 0)
        for s in (await pc.getStats()).values()
        if getattr(s, "type", "") == "outbound-rtp"
    )


def teller_video_buffer(teller: Any) -> VideoJitterBuffer | None:
    """The teller's video jitter buffer when it runs the terminal's receive path."""
    for pc in teller._pcs:
        for t in pc.getTransceivers():
            jb = getattr(t.receiver, "_RTCRtpReceiver__jitter_buffer", None)
            if isinstance(jb, VideoJitterBuffer):
                return jb
    return None


async def one_call(
    janus: Janus,
    coturn: Coturn,
    models: ModelSet,
    seconds: float,
    outage_every: float,
    stock_teller: bool = False,
) -> dict[str, Any]:
    link = village(rate_kbps=300, rtt_ms=200, loss=0.03)
    room = f"weak-{int(outage_every)}"
    faces = {"checked": 0, "found": 0}
    frame_no = 0

    def look(frame: Any) -> None:
        nonlocal frame_no
        frame_no += 1
        if frame_no % 3:
            return
        faces["checked"] += 1
        faces["found"] += bool(pipeline.detect(models, frame.to_ndarray(format="rgb24")))

    async with weak_call(
        janus, coturn, link, link, room=room, teller_receive_path=not stock_teller
    ) as call:
        seen, peer, relay = call.teller.seen, call.peer, call.relay
        call.teller.on_video = look
        start, v0, a0 = time.monotonic(), len(seen.video_at), len(seen.audio_at)
        samples: list[tuple[float, int, int]] = []
        last_bytes, next_outage = await sent_bytes(peer._pub_pc), outage_every
        outages = 0
        while (elapsed := time.monotonic() - start) < seconds:
            await asyncio.sleep(SAMPLE_EVERY_S)
            elapsed = time.monotonic() - start
            now_bytes = await sent_bytes(peer._pub_pc)
            kbps = round((now_bytes - last_bytes) * 8 / 1000 / SAMPLE_EVERY_S)
            samples.append((round(elapsed), kbps, round(peer.media.link_kbps)))
            last_bytes = now_bytes
            if outage_every and elapsed >= next_outage and elapsed < seconds - 10:
                relay.outage(2.0)
                outages += 1
                next_outage += outage_every
        video = seen.video_at[v0:]
        audio = seen.audio_at[a0:]
        wall = time.monotonic() - start
        gaps = audio_gaps(audio)
        plc = concealed_runs(audio)
        kinds = {k: sum(f[3] == k for f in audio) for k in ("decoded", "fec", "plc")}
        stuck = freezes(video)
        jb = teller_video_buffer(call.teller)
        return {
            "config": "300 kbit/s, 200 ms RTT, 3% loss"
            + (f", 2 s outage every {outage_every:g} s" if outage_every else "")
            + (", teller: aiortc's stock receiver" if stock_teller else ""),
            "seconds": round(wall),
            "setup_ms": round(call.setup_s * 1000),
            "freezes_over_500ms": len(stuck),
            "longest_freeze_ms": round(max(stuck, default=0) * 1000),
            "fps": round(len(video) / wall, 1),
            "audio_gaps": len(gaps),
            "audio_gaps_over_200ms": sum(g > 0.2 for g in gaps),
            "longest_audio_gap_ms": round(max(gaps, default=0) * 1000),
            "audio_missing_pct": round(100 * sum(gaps) / wall, 2),
            "audio_frames": kinds,
            "audio_concealed_pct": round(100 * sum(plc) / wall, 2),
            "longest_concealed_ms": round(max(plc, default=0) * 1000),
            "teller_jb_skips": jb.skips if jb else None,
            "teller_jb_discarded": jb.discarded if jb else None,
            "teller_keyframe_waits_ms": [round(w * 1000) for w in jb.keyframe_waits]
            if jb
            else None,
            "outages": outages,
            "face_found_pct": round(100 * faces["found"] / max(faces["checked"], 1), 1),
            "frames_checked": faces["checked"],
            "sent_kbps_every_5s": [k for _, k, _ in samples],
            "link_estimate_kbps": [e for _, _, e in samples],
            "uplink_lost": relay.up.stats.lost,
            "uplink_queue_dropped": relay.up.stats.queue_dropped,
            "uplink_longest_queue_wait_ms": round(1000 * relay.up.stats.longest_queue_wait_s),
            "uplink_queue_waits_over_100ms": relay.up.stats.queue_waits_over_100ms,
            "uplink_delivered": relay.up.stats.delivered,
        }


async def browser_call(
    janus: Janus,
    coturn: Coturn,
    models: ModelSet,
    page: Any,
    seconds: float,
    outage_every: float,
    retransmit_limit: float = 0.0,
    nice: int = 0,
    infra_nice: int = 0,
    retransmit_kbps: float = 0.0,
    share: float = 0.25,
    pacing_share: float = 0.85,
) -> dict[str, Any]:
    """One call to the teller page in Chromium; the figures are the browser's own."""
    link = village(rate_kbps=300, rtt_ms=200, loss=0.03)
    room = f"weak-browser-{int(outage_every)}"
    await page.reload()
    load_start = os.getloadavg()[0]
    lag = LoopLag()
    async with weak_browser_call(
        janus, coturn, page, link, link, room=room, grab_every=3, nice=nice, relay_thread=True,
        retransmit_share=share, pacing_share=pacing_share,
    ) as call:  # fmt: skip
        peer, relay = call.terminal.peer, call.terminal.relay
        lag.start()
        relay_lag = LoopLag()
        relay_lag.start(relay._loop)  # type: ignore[union-attr]
        if infra_nice:
            renice_infrastructure(infra_nice)
        threads = media_threads()
        late_every_5s: list[int] = []
        relay_late_every_5s: list[int] = []
        # The terminal's own budget (RoomPeer, call_retransmit_share) unless the bench's
        # options replace it (an age limit, or another rate).
        limited = (
            retransmit.install(peer._pub_pc, retransmit_limit, retransmit_kbps * 1000)
            if retransmit_limit or retransmit_kbps
            else peer.retransmissions
        )
        start, page_start = time.monotonic(), await call.now_ms()
        samples: list[tuple[float, int, int]] = []
        last_bytes, next_outage = await sent_bytes(peer._pub_pc), outage_every
        outages_at: list[float] = []
        grabs: list[str] = []
        while time.monotonic() - start < seconds:
            # The grabbed frames (PNG data URLs) cross Playwright's pipe into this process,
            # whose loop thread is the terminal's: fetched every second, a few hundred kB at
            # a time, not megabytes every 5 s (a stall no real terminal has).
            for _ in range(int(SAMPLE_EVERY_S)):
                await asyncio.sleep(1.0)
                grabs += await page.evaluate("window.grabbed.splice(0)")
            elapsed = time.monotonic() - start
            now_bytes = await sent_bytes(peer._pub_pc)
            kbps = round((now_bytes - last_bytes) * 8 / 1000 / SAMPLE_EVERY_S)
            samples.append((round(elapsed), kbps, round(peer.media.link_kbps)))
            late_every_5s.append(lag.interval_max_ms())
            relay_late_every_5s.append(relay_lag.interval_max_ms())
            if infra_nice:
                renice_infrastructure(infra_nice)  # threads started since
            last_bytes = now_bytes
            if outage_every and elapsed >= next_outage and elapsed < seconds - 10:
                outages_at.append(await call.now_ms())
                relay.outage(2.0)
                next_outage += outage_every
        page_end = await call.now_ms()
        # Stopped here: what follows (the page's records, megabytes of JSON parsed while
        # holding the GIL) is after the measured window and would stall the relay thread.
        loop_lag, relay_loop_lag = lag.stop(), relay_lag.stop()
        grabs += await page.evaluate("window.grabbed.splice(0)")
        frames = [t for t in await call.frames_at() if page_start <= t <= page_end]
        stats = [s for s in await call.samples() if page_start <= s["t"] <= page_end]
        up = relay.up.stats
        uplink = (up.lost, up.queue_dropped, up.delivered, up.longest_queue_wait_s,
                  up.queue_waits_over_100ms)  # fmt: skip
        refused = peer.media.priority.refused  # type: ignore[attr-defined]
        paced = peer.paced
    load_end = os.getloadavg()[0]
    wall = (page_end - page_start) / 1000
    faces = [bool(pipeline.detect(models, png_rgb(g))) for g in grabs]
    gaps = [length for _, length in frame_gaps(frames)]
    long_gaps = [
        (round((at - page_start) / 1000, 1), round(ms)) for at, ms in frame_gaps(frames, 1000)
    ]
    # Recovery: from the end of each 2 s outage to the first frame presented after it.
    recover = [
        round(min((t for t in frames if t > at + 2000), default=page_end) - (at + 2000))
        for at in outages_at
    ]
    concealed_at = concealments(stats)
    concealed = [length for _, length in concealed_at]
    fps_seen = sorted(s["video"].get("framesPerSecond", 0) for s in stats)

    def grew(kind: str, key: str) -> float:
        return stats_delta(stats, kind, key)

    emitted = grew("video", "jitterBufferEmittedCount")
    a_total = grew("audio", "totalSamplesReceived")
    last = stats[-1] if stats else {"video": {}, "audio": {}}
    return {
        "config": "300 kbit/s, 200 ms RTT, 3% loss"
        + (f", 2 s outage every {outage_every:g} s" if outage_every else "")
        + ", teller: Chromium (teller-media.js)"
        + (f", retransmissions limited to {retransmit_limit:g} s" if retransmit_limit else "")
        + (f", retransmissions within {retransmit_kbps:g} kbit/s" if retransmit_kbps else "")
        + f", retransmit share {share:g}"
        + f", pacing share {pacing_share:g}"
        + f", terminal media nice {nice}",
        "load_average_start_end": [round(load_start, 1), round(load_end, 1)],
        "media_thread_nice": threads,
        "nice_refused": refused,
        "terminal_loop_late": loop_lag,
        "terminal_loop_late_max_ms_every_5s": late_every_5s,
        "relay_loop_late": relay_loop_lag,
        "relay_loop_late_max_ms_every_5s": relay_late_every_5s,
        "infra_nice": infra_nice,
        "seconds": round(wall),
        "setup_ms": round(call.setup_s * 1000),
        "presented_fps": round(len(frames) / wall, 1),
        "freezes_over_500ms": len(gaps),
        "longest_freeze_ms": round(max(gaps, default=0)),
        "freezes_over_1s": sum(g > 1000 for g in gaps),
        "freezes_over_1s_at_s_ms": long_gaps,
        "outages_at_s": [round((at - page_start) / 1000, 1) for at in outages_at],
        "chromium_freezeCount": grew("video", "freezeCount"),
        "chromium_totalFreezesDuration_s": round(grew("video", "totalFreezesDuration"), 2),
        "chromium_framesDecoded": grew("video", "framesDecoded"),
        "chromium_framesPerSecond_median": fps_seen[len(fps_seen) // 2] if fps_seen else 0,
        "chromium_jitterBufferDelay_ms": round(
            1000 * grew("video", "jitterBufferDelay") / max(emitted, 1)
        ),
        "video_size": [last["video"].get("frameWidth"), last["video"].get("frameHeight")],
        "video_packets_lost": grew("video", "packetsLost"),
        "nack_sent": grew("video", "nackCount"),
        "pli_sent": grew("video", "pliCount"),
        "audio_concealed_pct": round(100 * grew("audio", "concealedSamples") / max(a_total, 1), 2),
        "audio_silent_concealed_pct": round(
            100 * grew("audio", "silentConcealedSamples") / max(a_total, 1), 2
        ),
        "audio_concealment_events": grew("audio", "concealmentEvents"),
        "audio_concealments_over_200ms": sum(c > 0.2 for c in concealed),
        "longest_audio_concealment_ms": round(1000 * max(concealed, default=0)),
        "audio_concealments_over_200ms_at_s_ms": [
            (round((at - page_start) / 1000, 1), round(1000 * length))
            for at, length in concealed_at
            if length > 0.2
        ],
        "audio_packets_lost": grew("audio", "packetsLost"),
        "audio_jitterBufferDelay_ms": round(
            1000
            * grew("audio", "jitterBufferDelay")
            / max(grew("audio", "jitterBufferEmittedCount"), 1)
        ),
        "audio_jitter_max_ms": round(
            1000 * max((s["audio"].get("jitter", 0) or 0 for s in stats), default=0)
        ),
        "outages": len(outages_at),
        "frames_after_outage_ms": recover,
        "face_found_pct": round(100 * sum(faces) / max(len(faces), 1), 1),
        "frames_checked": len(faces),
        "sent_kbps_every_5s": [k for _, k, _ in samples],
        "link_estimate_kbps": [e for _, _, e in samples],
        "uplink_lost": uplink[0],
        "uplink_queue_dropped": uplink[1],
        "uplink_longest_queue_wait_ms": round(1000 * uplink[3]),
        "uplink_queue_waits_over_100ms": uplink[4],
        "uplink_delivered": uplink[2],
        "retransmissions": None
        if limited is None
        else {
            "sent": limited.sent,
            "skipped_old": limited.skipped,
            "skipped_over_budget": limited.over_budget,
            "keyframes": limited.keyframes,
        },
        "paced": None
        if paced is None
        else {
            "packets": paced.packets,
            "held": paced.held,
            "held_s": round(paced.held_s, 1),
            "longest_hold_ms": round(1000 * paced.longest_s),
        },
    }


async def main_browser(
    seconds: float,
    outage_every: float,
    both: bool,
    retransmit_limit: float,
    nice: int,
    infra_nice: int = 0,
    retransmit_kbps: float = 0.0,
    share: float = 0.25,
    pacing_share: float = 0.85,
) -> None:
    from playwright.async_api import async_playwright

    state = Path(tempfile.mkdtemp(prefix="bench-weak-browser-"))
    ip = host_address()
    coturn = Coturn(
        CoturnConfig(procs.free_port(ip), listen_ip=ip, relay_ip=ip, allowed_peer_ips=(ip,)),
        state / "c",
    ).start()
    models = ModelSet.load()
    try:
        with serve_page(state / "site") as site:
            cfg = JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1",
                              cors_origin=site)  # fmt: skip
            janus = Janus(cfg, state / "j").start()
            try:
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                    page = await browser.new_page()
                    await page.goto(f"{site}/index.html")
                    for every in (0.0, outage_every) if both else (outage_every,):
                        result = await browser_call(
                            janus, coturn, models, page, seconds, every, retransmit_limit, nice,
                            infra_nice, retransmit_kbps, share, pacing_share,
                        )  # fmt: skip
                        print(orjson.dumps(result).decode(), flush=True)
                    await browser.close()
            finally:
                janus.stop()
    finally:
        coturn.stop()
        shutil.rmtree(state, ignore_errors=True)
    print(f"cores: {os.cpu_count()}; load average: {os.getloadavg()[0]:.2f}")


async def main(seconds: float, outage_every: float, both: bool, stock_teller: bool) -> None:
    state = Path(tempfile.mkdtemp(prefix="bench-weak-"))
    ip = host_address()
    janus = Janus(
        JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1"), state / "j"
    ).start()
    coturn = Coturn(
        CoturnConfig(procs.free_port(ip), listen_ip=ip, relay_ip=ip, allowed_peer_ips=(ip,)),
        state / "c",
    ).start()
    models = ModelSet.load()
    try:
        for every in (0.0, outage_every) if both else (outage_every,):
            result = await one_call(janus, coturn, models, seconds, every, stock_teller)
            print(orjson.dumps(result).decode(), flush=True)
    finally:
        coturn.stop()
        janus.stop()
        shutil.rmtree(state, ignore_errors=True)
    print(f"cores: {os.cpu_count()}; load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seconds", type=float, nargs="?", default=120.0)
    ap.add_argument("--outages-every", type=float, default=30.0)
    ap.add_argument("--only-outages", action="store_true")
    ap.add_argument("--max-wait", type=float, help="the video jitter buffer's wait for a hole (s)")
    ap.add_argument(
        "--stock-teller", action="store_true", help="the teller on aiortc's own receiver"
    )
    ap.add_argument(
        "--teller",
        choices=("aiortc", "chromium"),
        default="aiortc",
        help="chromium: the production teller page in headless Chromium",
    )
    ap.add_argument(
        "--retransmit-limit",
        type=float,
        default=0.0,
        metavar="S",
        help="chromium only: the terminal skips NACKs for packets older than S seconds and "
        "sends a keyframe instead (edge.teller.retransmit; 0: off)",
    )
    ap.add_argument(
        "--retransmit-rate",
        type=float,
        default=0.0,
        metavar="KBPS",
        help="chromium only: the terminal's retransmissions together within KBPS kbit/s "
        "(edge.teller.retransmit.Budget; a keyframe instead of what does not fit; 0: off)",
    )
    ap.add_argument(
        "--retransmit-share",
        type=float,
        default=AgentSettings.model_fields["call_retransmit_share"].default,
        metavar="F",
        help="chromium only: the terminal's call_retransmit_share (default: the agent's); "
        "0: every NACK answered",
    )
    ap.add_argument(
        "--pacing-share",
        type=float,
        default=AgentSettings.model_fields["call_pacing_share"].default,
        metavar="F",
        help="chromium only: the terminal's call_pacing_share (default: the agent's); "
        "0: aiortc's bursts, unpaced",
    )
    ap.add_argument(
        "--media-nice",
        type=int,
        default=CALL_MEDIA_NICE,
        metavar="N",
        help="chromium only: the terminal's call_media_nice (default: the rendered unit's, "
        f"{CALL_MEDIA_NICE}; 0: ordinary priority)",
    )
    ap.add_argument(
        "--infra-nice",
        type=int,
        default=0,
        metavar="N",
        help="chromium only: Janus, coturn, Chromium and the relay thread at nice N (0: as "
        "started). Diagnostic: in a deployment they do not share the terminal's CPU",
    )
    args = ap.parse_args()
    if args.max_wait is not None:
        jitter.VIDEO_MAX_WAIT_S = args.max_wait
    print("command:", " ".join([".venv/bin/python", *sys.argv]), flush=True)
    print(
        f"bench process: {privilege()}; the agent unit grants CAP_SYS_NICE only "
        f"(cuntong.deploy.agent_unit); cores: {os.cpu_count()}; "
        f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    if args.teller == "chromium":
        asyncio.run(
            main_browser(
                args.seconds,
                args.outages_every,
                not args.only_outages,
                args.retransmit_limit,
                args.media_nice,
                args.infra_nice,
                args.retransmit_rate,
                args.retransmit_share,
                args.pacing_share,
            )
        )
        sys.exit(0)
    asyncio.run(main(args.seconds, args.outages_every, not args.only_outages, args.stock_teller))
