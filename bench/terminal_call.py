"""The terminal's call as the customer experiences it, through real Janus on loopback.

For each configuration a ``TellerClient`` with ``CallMedia`` (simulated camera with the
capture time stamped in every frame, tone microphone) gets a grant, joins a fresh room and
publishes; an aiortc teller publishes back and subscribes. Measured:

- setup:          grant handed to the client → the teller decodes the first customer frame
- glass-to-glass: capture stamp in the frame → decoded at the teller (every 5th frame), p50/p95
                  (none with face-aware video: the stamp sits in the smoothed background)
- sent:           the terminal's outgoing RTP (audio + video) in kbit/s over the call
- cpu:            the whole process's CPU (both peers, Janus excluded) per second of call

Configurations: a 400 kbit/s village link with and without face-aware compression, and a
1000 kbit/s link. Loopback only: no network delay or loss is added.

    .venv/bin/python bench/terminal_call.py [seconds]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from common import procs
from cuntong.servers.janus import Janus, JanusConfig
from edge.teller import encoding
from edge.teller.call import Phase
from edge.teller.client import TellerClient
from edge.teller.media import CallMedia
from edge.teller.paperwork import Paperwork
from edge.teller.peer import RoomPeer
from tests.helpers import eventually
from tests.terminal.teller_side import TellerPeer, connect_message, open_room

CONFIGS = (("400 kbit/s, face-aware", 400, True), ("400 kbit/s, plain", 400, False),
           ("1000 kbit/s, plain", 1000, False))  # fmt: skip


async def _is(value: bool) -> bool:
    return value


async def sent_kbps(peer: RoomPeer) -> int:
    pc = peer._pub_pc  # the bench reads the live connection's counters
    assert pc is not None
    return sum(
        getattr(s, "bytesSent", 0)
        for s in (await pc.getStats()).values()
        if getattr(s, "type", "") == "outbound-rtp"
    )


async def one_call(
    janus: Janus, name: str, kbps: int, face: bool, seconds: float
) -> dict[str, Any]:
    room = f"bench-{kbps}-{int(face)}"
    customer_token, teller_token = await open_room(janus, room)
    media = CallMedia(simulate=True, link_kbps=kbps, face_aware=face)

    async def publish(payload: bytes) -> None:
        return None

    async def no_capture(kind: str) -> None:
        return None

    client = TellerClient(
        publish,
        lambda grant, on_text, on_event: RoomPeer(grant, media, on_text, on_event),
        lambda send: Paperwork(send, no_capture),
        lambda: dt.datetime.now(dt.UTC),
    )
    await client.ask("pension")
    rid = client.call.request_id
    await client.on_desk(orjson.dumps({"type": "queued", "request_id": rid, "session": room}))
    teller = TellerPeer(janus, teller_token, room)
    async with teller.joined():
        t0 = time.monotonic()
        await client.on_desk(orjson.dumps(connect_message(janus, room, customer_token, room)))
        await eventually(lambda: _is(client.call.phase is Phase.IN_CALL), 20, every=0.01)
        await teller.subscribe_customer()
        await eventually(lambda: _is(teller.seen.video > 0), 20, every=0.01)
        setup = time.monotonic() - t0
        peer = client.peer
        assert isinstance(peer, RoomPeer)
        bytes0, cpu0, wall0 = await sent_kbps(peer), time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        bytes1, cpu1, wall1 = await sent_kbps(peer), time.process_time(), time.monotonic()
        lat = sorted(teller.seen.latencies)
        await client.end()
    encoding.reset()
    return {
        "config": name,
        "setup_ms": round(setup * 1000),
        "g2g_p50_ms": round(statistics.median(lat)) if lat else None,
        "g2g_p95_ms": round(lat[int(0.95 * (len(lat) - 1))]) if lat else None,
        "sent_kbps": round((bytes1 - bytes0) * 8 / 1000 / (wall1 - wall0)),
        "cpu_per_s": round((cpu1 - cpu0) / (wall1 - wall0), 2),
        "size": f"{teller.seen.size[0]}x{teller.seen.size[1]}",
        "faces_seen": getattr(media.preprocess, "faces_seen", None),
    }


async def main(seconds: float) -> None:
    state = Path(tempfile.mkdtemp(prefix="bench-terminal-"))
    janus = Janus(
        JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1"), state
    ).start()
    try:
        for name, kbps, face in CONFIGS:
            print(orjson.dumps(await one_call(janus, name, kbps, face, seconds)).decode())
    finally:
        janus.stop()
        shutil.rmtree(state, ignore_errors=True)
    print(f"cores: {os.cpu_count()}; command: .venv/bin/python bench/terminal_call.py {seconds:g}")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0))
