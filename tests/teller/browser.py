"""Headless Chromium as the teller: the page, the browser flags and a loopback web server.

Shared by the browser tests. The page imports ``teller-media.js`` and exposes
``start(grant, options)``, ``decoded()`` (video frames the browser decoded from the peer)
and ``pairs()`` (the candidate types of each PeerConnection's selected ICE pair, from
``getStats``). It is served from loopback, the origin Janus's CORS setting allows
(Chromium refuses loopback requests from a page that is not itself local).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.screens import CHROMIUM

__all__ = ["CHROMIUM", "FLAGS", "PAGE", "serve_page"]

STATIC = Path(__file__).resolve().parents[2] / "cloud" / "sessions" / "static"
FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE = """<!doctype html><title>teller</title><script type="module">
import { joinRoom } from "./teller-media.js";
window.start = async (grant, options) => {
  const stream = await navigator.mediaDevices.getUserMedia(
    {audio: true, video: {width: 320, height: 240}});
  window.call = await joinRoom(grant, stream, (s) => { window.remote = s; }, options || {});
};
window.decoded = async () => {
  let n = 0;
  (await window.call.subscriber.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") n += r.framesDecoded || 0;
  });
  return n;
};
window.pairs = async () => {
  const out = {};
  for (const name of ["publisher", "subscriber"]) {
    const stats = await window.call[name].getStats();
    const byId = new Map();
    stats.forEach((r) => byId.set(r.id, r));
    out[name] = [];
    stats.forEach((r) => {
      if (r.type === "transport" && r.selectedCandidatePairId) {
        const pair = byId.get(r.selectedCandidatePairId);
        out[name].push({
          local: byId.get(pair.localCandidateId).candidateType,
          remote: byId.get(pair.remoteCandidateId).candidateType,
          state: pair.state, bytesReceived: pair.bytesReceived, bytesSent: pair.bytesSent,
        });
      }
    });
  }
  return out;
};
</script>"""


@contextlib.contextmanager
def serve_page(root: Path) -> Iterator[str]:
    """The teller page and teller-media.js on a loopback HTTP server; yields its origin."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text(PAGE)
    (root / "teller-media.js").write_text((STATIC / "teller-media.js").read_text())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
