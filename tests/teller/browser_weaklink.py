"""The production teller over the village link: headless Chromium on the far side of the call.

The terminal is the same as in ``weaklink`` (the agent's ``TellerClient``/``RoomPeer``/
``CallMedia``, relay-only ICE through the impairment relay in front of coturn); the teller is
the teller page's own ``teller-media.js`` in headless Chromium on loopback to Janus, as the
desk runs it in the cloud. The browser is measured from inside: ``MONITOR`` puts the
customer's stream in a ``<video>`` element and records

- ``window.frames``: the time of every frame the element presented
  (``requestVideoFrameCallback``): what the teller saw, freezes included;
- ``window.samples``: the subscription's ``inbound-rtp`` stats every 100 ms (video:
  framesDecoded, freezeCount, totalFreezesDuration, framesPerSecond, jitterBufferDelay,
  nack/pli counts; audio: concealedSamples, totalSamplesReceived, concealmentEvents);
- ``window.grabbed``: every ``grab_every``-th presented frame drawn into a canvas, as PNG,
  for the bench to run BlazeFace on (the terminal's own detector).

The pure readings of those records (``frame_gaps``, ``concealments``, ``stats_delta``) live
here so the test and the bench read them the same way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from playwright.async_api import Page

from cuntong.servers.coturn import Coturn
from cuntong.servers.impair import Impairment
from cuntong.servers.janus import Janus
from tests.helpers import eventually
from tests.teller.weaklink import VillageTerminal, village_terminal
from tests.terminal.teller_side import open_room

MONITOR = """(grabEvery) => {
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d");
  window.frames_at = []; window.grabbed = []; window.samples = [];
  let shown = null, n = 0;
  const follow = () => {  // the stream changes if the terminal republishes
    if (window.remote && window.remote !== shown) {
      shown = window.remote; video.srcObject = shown; video.play().catch(() => {});
    }
  };
  follow();
  const onFrame = (now, meta) => {
    window.frames_at.push(now);
    n += 1;
    if (grabEvery && n % grabEvery === 0 && video.videoWidth) {
      canvas.width = video.videoWidth; canvas.height = video.videoHeight;
      ctx.drawImage(video, 0, 0);
      window.grabbed.push(canvas.toDataURL("image/png"));
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  const V = ["framesDecoded", "framesReceived", "framesDropped", "freezeCount",
             "totalFreezesDuration", "pauseCount", "totalPausesDuration", "framesPerSecond",
             "jitterBufferDelay", "jitterBufferEmittedCount", "packetsLost", "packetsReceived",
             "nackCount", "pliCount", "firCount", "keyFramesDecoded", "frameWidth",
             "frameHeight", "bytesReceived"];
  const A = ["concealedSamples", "silentConcealedSamples", "totalSamplesReceived",
             "concealmentEvents", "packetsLost", "packetsReceived", "jitterBufferDelay",
             "jitterBufferEmittedCount", "insertedSamplesForDeceleration",
             "removedSamplesForAcceleration", "bytesReceived", "jitter"];
  window.monitor = setInterval(async () => {
    follow();
    const call = window.call;
    if (!call) return;
    const s = {t: performance.now(), video: {}, audio: {}};
    (await call.subscriber.getStats()).forEach((r) => {
      if (r.type !== "inbound-rtp") return;
      for (const k of r.kind === "video" ? V : A) s[r.kind][k] = r[k] ?? 0;
    });
    window.samples.push(s);
  }, 100);
  return performance.now();
}"""


@dataclass
class BrowserCall:
    terminal: VillageTerminal
    page: Page
    setup_s: float

    async def now_ms(self) -> float:
        return float(await self.page.evaluate("performance.now()"))

    async def frames_at(self) -> list[float]:
        """When the teller's video element presented each frame (page ms)."""
        return [float(t) for t in await self.page.evaluate("window.frames_at")]

    async def samples(self) -> list[dict[str, Any]]:
        return list(await self.page.evaluate("window.samples"))

    async def decoded(self) -> int:
        return int(await self.page.evaluate("window.decoded()"))

    async def take_grabs(self) -> list[np.ndarray]:
        """The frames grabbed since the last call, as RGB arrays (and forgotten in the page)."""
        urls = await self.page.evaluate("window.grabbed.splice(0)")
        return [png_rgb(u) for u in urls]


def png_rgb(data_url: str) -> np.ndarray:
    import cv2

    raw = np.frombuffer(base64.b64decode(data_url.split(",", 1)[1]), np.uint8)
    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("the page's grabbed frame is not a PNG")
    return np.ascontiguousarray(bgr[:, :, ::-1])


@contextlib.asynccontextmanager
async def weak_browser_call(
    janus: Janus,
    coturn: Coturn,
    page: Page,
    up: Impairment,
    down: Impairment,
    link_kbps: float = 300,
    seed: int = 1,
    room: str = "weak-browser",
    grab_every: int = 0,
    nice: int = 0,
    relay_thread: bool = False,
    retransmit_share: float = 0.25,
    pacing_share: float = 0.85,
) -> AsyncIterator[BrowserCall]:
    """Connect the terminal over the impaired link to the teller page in ``page`` (already on
    the site ``janus`` allows by CORS); yields once the browser has decoded a frame.
    ``nice``, ``relay_thread``, ``retransmit_share``, ``pacing_share``: as
    ``village_terminal``'s."""
    customer_token, teller_token = await open_room(janus, room)
    grant = {
        "type": "connect", "session": room, "role": "teller", "janus_url": janus.url,
        "token": teller_token, "room": room, "feed": "teller", "peer_feed": "customer",
        "ice_servers": [],
    }  # fmt: skip
    async with village_terminal(
        coturn, up, down, link_kbps, seed, room, nice=nice, relay_thread=relay_thread,
        retransmit_share=retransmit_share, pacing_share=pacing_share,
    ) as terminal:  # fmt: skip
        # The page publishes, then subscribes to the customer as soon as it publishes.
        started = asyncio.create_task(page.evaluate("g => window.start(g)", grant))
        try:
            t0 = await terminal.connect(janus, room, customer_token)
            await asyncio.wait_for(started, 60)
        finally:
            if not started.done():
                started.cancel()
        await page.evaluate(MONITOR, grab_every)
        call = BrowserCall(terminal, page, 0.0)
        await eventually(lambda: _more(call.decoded(), 0), 60, every=0.02)
        call.setup_s = time.monotonic() - t0
        try:
            yield call
        finally:
            await page.evaluate("clearInterval(window.monitor); window.call.leave()")


async def _more(value: Any, than: int) -> bool:
    return int(await value) > than


def frame_gaps(frames_at_ms: list[float], threshold_ms: float = 500) -> list[tuple[float, float]]:
    """(start, length) in ms of the gaps between consecutive presented frames longer than
    ``threshold_ms``."""
    return [(a, b - a) for a, b in itertools.pairwise(frames_at_ms) if b - a > threshold_ms]


def stats_delta(samples: list[dict[str, Any]], kind: str, key: str) -> float:
    """How much a cumulative counter grew over the samples. A counter that falls (the page
    subscribed again after the terminal republished) starts over: its growth is summed."""
    total, last = 0.0, None
    for s in samples:
        value = float(s[kind].get(key, 0) or 0)
        if last is not None:
            total += value - last if value >= last else value
        last = value
    return total


def concealments(samples: list[dict[str, Any]], rate: int = 48_000) -> list[tuple[float, float]]:
    """(page ms where it was first seen, length in s) of each stretch of audio the browser
    concealed, as far as 100 ms samples can tell: consecutive samples with concealed audio
    and no new concealment event between them are one concealment; several events within
    one sample count as one (so a length is never understated)."""
    runs: list[tuple[float, float]] = []
    run, since = 0.0, 0.0
    for a, b in itertools.pairwise(samples):
        concealed = b["audio"].get("concealedSamples", 0) - a["audio"].get("concealedSamples", 0)
        events = b["audio"].get("concealmentEvents", 0) - a["audio"].get("concealmentEvents", 0)
        if concealed <= 0:
            if run:
                runs.append((since, run / rate))
            run = 0.0
        elif events > 0 and run:
            runs.append((since, run / rate))
            run, since = float(concealed), a["t"]
        else:
            if not run:
                since = a["t"]
            run += concealed
    return runs + ([(since, run / rate)] if run else [])
