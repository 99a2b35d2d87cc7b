"""Glass-to-glass latency terminal → teller with the teller in Chromium, through the desk and Janus.

The terminal is an aiortc peer whose live-encoded 640×360 frames carry their capture time
as a barcode (``tests/callbench``); the teller is headless Chromium joined with the
desk's grant through ``teller-media.js``. For every frame the browser is about to show
(``requestVideoFrameCallback``) the page draws it on a canvas, reads the barcode and
subtracts it from its own clock: encoder, Janus, Chromium's jitter buffer and decoder —
what a teller's screen adds, which the aiortc probe of ``bench/calls.py`` does not.
Both clocks are this machine's wall clock.

    .venv/bin/python bench/glass.py [seconds]
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiortc import RTCPeerConnection

from cloud.media.pool import JanusPool, NodeAccess
from cloud.sessions.desk import Desk
from cloud.sessions.grants import Message
from cloud.sessions.routing import Board, TellerState
from cloud.sessions.skills import Skills
from common import procs
from cuntong.servers.janus import Janus, JanusConfig
from tests.callbench import barcode, media
from tests.callbench.legs import Leg
from tests.teller.browser import CHROMIUM, FLAGS, serve_page

# Reads the barcode of every frame Chromium presents; window.ages collects the results.
WATCH = f"""() => {{
  const video = document.createElement("video");
  video.muted = true; video.playsInline = true; video.srcObject = window.remote;
  document.body.appendChild(video);
  const canvas = document.createElement("canvas");
  canvas.width = {barcode.BITS * barcode.BLOCK}; canvas.height = {2 * barcode.BLOCK};
  const ctx = canvas.getContext("2d", {{willReadFrequently: true}});
  window.ages = []; window.unread = 0;
  const B = {barcode.BLOCK}, BITS = {barcode.BITS};
  const luma = (d, x, y) => {{
    const i = 4 * (y * canvas.width + x);
    return 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
  }};
  const onFrame = () => {{
    const now = Date.now();
    ctx.drawImage(video, 0, 0, canvas.width, canvas.height,
                  0, 0, canvas.width, canvas.height);
    const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let value = 0, ok = true;
    for (let i = 0; i < BITS; i++) {{
      const x = i * B + B / 2, top = luma(d, x, B / 2), bottom = luma(d, x, B + B / 2);
      const bit = top > 128;
      if (bit === (bottom > 128) || Math.abs(top - 128) < 40) ok = false;
      value = value * 2 + (bit ? 1 : 0);
    }}
    if (ok) window.ages.push(((now % 2 ** 32) - value + 2 ** 32) % 2 ** 32);
    else window.unread++;
    video.requestVideoFrameCallback(onFrame);
  }};
  video.requestVideoFrameCallback(onFrame);
  return video.play();
}}"""


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def main(seconds: float) -> None:
    state = Path(tempfile.mkdtemp(prefix="cuntong-bench-glass-"))
    (state / "rec").mkdir()
    tone = media.Clip([], [], media.encode_tone(2.0))

    def camera(pc: RTCPeerConnection) -> None:
        pc.addTrack(media.OpusTrack(tone))
        pc.addTrack(media.StampTrack())

    inbox: list[tuple[str, Message]] = []

    async def notify(address: str, message: Message) -> None:
        inbox.append((address, message))

    with serve_page(state / "site") as site:
        cfg = JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1",
                          cors_origin=site)  # fmt: skip
        janus = Janus(cfg, state / "janus").start()
        try:
            board = Board()
            now = datetime.now(UTC).timestamp()
            board.add_teller("web", Skills.of({"pension": 5}, {"cmn"}), now)
            board.set_state("web", TellerState.AVAILABLE, now)
            node = NodeAccess("j1", janus.url, janus.admin_url, cfg.admin_secret,
                              cfg.room_admin_key, str(state / "rec"))  # fmt: skip
            async with JanusPool([node]) as pool, async_playwright() as pw:
                desk = Desk(board, pool, notify, lambda: datetime.now(UTC))
                await desk.request("glass", "T0001", "pension", "cmn", elderly=False)
                teller = (await desk.accept("web", "glass")).message()
                customer = next(m for a, m in inbox if m["type"] == "connect")
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = await browser.new_page()
                await page.goto(f"{site}/index.html")
                started = asyncio.create_task(page.evaluate("g => window.start(g)", teller))
                terminal = await Leg.join(customer, camera)
                await asyncio.wait_for(started, 30)
                await page.wait_for_function(
                    "window.remote && window.remote.getVideoTracks().length"
                )
                await page.evaluate(WATCH)
                await asyncio.sleep(seconds)
                ages = await page.evaluate("window.ages")
                unread = await page.evaluate("window.unread")
                await page.evaluate("window.call.leave()")
                await terminal.leave()
                await browser.close()
                await desk.hang_up("glass", "done")
        finally:
            janus.stop()
            shutil.rmtree(state, ignore_errors=True)
    print(
        f"glass-to-glass terminal (aiortc, live VP8 640x360) -> teller (Chromium), {seconds:g} s:"
    )
    print(f"  frames read {len(ages)} (unreadable {unread}); ms: p50 {pct(ages, 0.5):.0f} "
          f"p95 {pct(ages, 0.95):.0f} p99 {pct(ages, 0.99):.0f} "
          f"mean {statistics.mean(ages):.0f}")  # fmt: skip
    print(f"  reproduce: .venv/bin/python bench/glass.py {seconds:g}")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0))
