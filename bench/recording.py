"""Cost of archiving a call: the recording pipeline's wall time per minute of call.

A customer and a teller (aiortc, 320×240 moving frames + 440 Hz tone each) talk through
a real Janus room with recording on for ``seconds``; after hang-up the pipeline
(janus-pp-rec per stream, ffmpeg -c copy into one .mkv, ffprobe check, SHA-256) runs and
is timed. The synthetic video compresses far better than a camera's, so file sizes here
are a floor; the pipeline's time is dominated by process starts and I/O, not by size.

    .venv/bin/python bench/recording.py [seconds]
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloud.media.recording import finish_recording
from common import procs
from cuntong.servers.janus import Janus, JanusConfig
from janus_client.janus import JanusAdmin, JanusClient
from janus_client.videoroom import RoomSpec, VideoRoom
from tests.teller.peers import publish


async def main(seconds: float) -> None:
    state = Path(tempfile.mkdtemp(prefix="cuntong-bench-rec-"))
    rec_dir, out_dir = state / "rec", state / "out"
    rec_dir.mkdir()
    janus = Janus(
        JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1"), state / "j"
    ).start()
    try:
        async with JanusAdmin(janus.admin_url, janus.cfg.admin_secret) as admin:
            await admin.add_token("bench")
        async with JanusClient(janus.url, "bench") as client, client.session() as session:
            control = await VideoRoom.attach(session)
            spec = RoomSpec("call", record=True, rec_dir=str(rec_dir))
            await control.create_room(spec, janus.cfg.room_admin_key)
            pcs = [
                (await publish(await VideoRoom.attach(session), "call", feed))[0]
                for feed in ("customer", "teller")
            ]
            await asyncio.sleep(seconds)
            for pc in pcs:
                await pc.close()
            await control.destroy_room("call")
        mjr_bytes = sum(p.stat().st_size for p in rec_dir.iterdir())
        t0 = time.perf_counter()
        result = await finish_recording(rec_dir, "call", out_dir, ["customer", "teller"])
        took = time.perf_counter() - t0
    finally:
        janus.stop()
        shutil.rmtree(state, ignore_errors=True)
    length = max(s.seconds for s in result.streams)
    print(f"recording pipeline, one {length:.1f} s call, 4 streams (Opus + VP8 each way):")
    print(f"  .mjr in: {mjr_bytes / 1e3:.0f} kB; .mkv out: {result.size / 1e3:.0f} kB")
    print(f"  pipeline wall time: {took * 1e3:.0f} ms ({took / length * 60:.2f} s per call minute)")
    print(f"  reproduce: .venv/bin/python bench/recording.py {seconds:g}")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 20.0))
