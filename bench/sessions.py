"""Call setup time through real Janus on loopback: publish → first frame at the subscriber.

Each round: the backend creates a recorded room; an aiortc "customer" publishes a tone and
moving frames (offer → Janus answer via long poll → ICE/DTLS up); an aiortc "teller"
subscribes and waits for its first decoded video frame; then both hang up and the room is
destroyed. Timed from just before the publisher creates its offer:

- answer:      the publisher has Janus's SDP answer
- webrtcup:    Janus reports the publisher's PeerConnection up
- first frame: the subscriber decoded the first video frame

Loopback only, so this is the cost of signalling, ICE, DTLS and the first keyframe, not
of the network; a village uplink adds its round trips on top.

    .venv/bin/python bench/sessions.py [rounds]

The issue's other session targets have their own scripts: ``bench/calls.py`` (concurrent
recorded calls through the desk, call setup from accept to first picture on both sides,
glass-to-glass latency), ``bench/glass.py`` (glass-to-glass into Chromium) and
``bench/routing.py`` (routing decision time with 1,000 queued).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import procs
from cuntong.servers.janus import Janus, JanusConfig
from janus_client.janus import JanusAdmin, JanusClient
from janus_client.videoroom import RoomSpec, VideoRoom
from tests.teller.peers import publish, subscribe


async def one_round(janus: Janus, n: int, rec_dir: Path) -> tuple[float, float, float]:
    room_id = f"bench-{n}"
    async with (
        JanusClient(janus.url, "bench") as client,
        client.session() as session,
    ):
        control = await VideoRoom.attach(session)
        await control.create_room(
            RoomSpec(room_id, record=True, rec_dir=str(rec_dir)), janus.cfg.room_admin_key
        )
        pub, sub = await VideoRoom.attach(session), await VideoRoom.attach(session)
        t0 = time.monotonic()
        pub_pc, _ = await publish(pub, room_id, "customer")
        t_answer = time.monotonic()
        event = await session.next_event(pub.handle_id, wait=15)
        while event.kind != "webrtcup":
            event = await session.next_event(pub.handle_id, wait=15)
        t_up = time.monotonic()
        sub_pc, got = await subscribe(sub, room_id, ["customer"])
        t_first = await asyncio.wait_for(got.first_video, 15)
        await got.stop()
        await sub_pc.close()
        await pub_pc.close()
        await control.destroy_room(room_id)
    return (t_answer - t0) * 1e3, (t_up - t0) * 1e3, (t_first - t0) * 1e3


async def main(rounds: int) -> None:
    state = Path(tempfile.mkdtemp(prefix="cuntong-bench-janus-"))
    janus = Janus(
        JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1"), state
    ).start()
    try:
        async with JanusAdmin(janus.admin_url, janus.cfg.admin_secret) as admin:
            await admin.add_token("bench")
        (state / "rec").mkdir()
        results = [await one_round(janus, n, state / "rec") for n in range(rounds)]
    finally:
        janus.stop()
        shutil.rmtree(state, ignore_errors=True)
    print(f"call setup through Janus on loopback, {rounds} rounds (recording on), ms:")
    for i, label in enumerate(("SDP answer", "webrtcup", "first frame at subscriber")):
        xs = sorted(r[i] for r in results)
        print(
            f"  {label:<27} median {statistics.median(xs):7.1f}  "
            f"min {xs[0]:7.1f}  max {xs[-1]:7.1f}"
        )
    print(f"  reproduce: .venv/bin/python bench/sessions.py {rounds}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
