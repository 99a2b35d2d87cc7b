"""One load-generator process for ``bench/calls.py``: places, watches and ends calls on command.

``bench/calls.py`` starts several of these (and one ``--live`` probe) and drives them
over stdin/stdout, one JSON object per line:

- ``{"cmd": "start", "n": 5, "first": 100}`` → places calls s0100..s0104, answers
  ``{"setup": [ms...], "phases": [[accept, grant, joined] ms...], "failed": [why...]}``;
- ``{"cmd": "snap"}`` → ``{"rx": {stream: [kind, received, lost]}, "sent": frames,
  "arrived": frames, "legs": n, "late_ms": [worst, p99], "bad_srtp": n, "ages": {...}}``;
- ``{"cmd": "end"}`` → hangs every call up, ``{"ended": n}``; ``{"cmd": "quit"}``.

A load worker sends the pre-encoded clip (``--clip``, made once by ``bench/calls.py``)
through ``fastpath`` and counts packets and frames there, without decoding (with
``--aiortc-rtp``, through aiortc's own RTP sender and receivers instead); the ``--live``
probe sends live-encoded frames with the capture-time barcode and decodes, for
glass-to-glass latency. Each worker has its
own tellers on the desk (``--business``), so offers never cross between workers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiortc import RTCPeerConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.callbench import fastpath, media
from tests.callbench.desk_calls import Call, Tellers, end_call, place_call
from tests.callbench.legs import Leg


def media_for(
    args: argparse.Namespace,
) -> tuple[Callable[[RTCPeerConnection], None], fastpath.Pump | None]:
    """What each leg publishes, and the pump that sends it when receivers count off the
    socket (``fastpath``); None when aiortc sends and receives."""
    if args.live:
        tone = media.Clip([], [], media.encode_tone(2.0))

        def live(pc: RTCPeerConnection) -> None:
            pc.addTrack(media.OpusTrack(tone))
            pc.addTrack(media.StampTrack())

        return live, None
    clip: media.Clip = pickle.loads(Path(args.clip).read_bytes())
    if args.aiortc_rtp:
        media.count_instead_of_decoding()
        return (lambda pc: media.add_clip(pc, clip)), None
    pump = fastpath.Pump(fastpath.Packetised.of(clip))
    return pump.add_clip, pump


async def snapshot(calls: list[Call], pump: fastpath.Pump | None) -> dict[str, Any]:
    legs: list[Leg] = [leg for c in calls for leg in (c.customer, c.teller)]
    rx = {}  # "<leg>/<ssrc>": [kind, received, lost], so streams can be matched later
    for leg in legs:
        for ssrc, stream in (await leg.received()).items():
            rx[f"{id(leg)}/{ssrc}"] = list(stream)
    sent = sum(
        s.track.sent
        for leg in legs
        for s in leg.publisher.getSenders()
        if isinstance(s.track, media.ClipTrack | media.StampTrack)
        or (isinstance(s.track, fastpath.PacedTrack) and s.track.kind == "video")
    )
    lateness = [] if pump is None else pump.lateness
    if pump is not None:
        pump.lateness = []
    return {
        "rx": rx,
        "sent": sent,
        "late_ms": [max(lateness, default=0.0) * 1e3, pct(lateness, 0.99) * 1e3],
        "bad_srtp": sum(leg.inbound.bad for leg in legs if leg.inbound is not None),
        "arrived": sum(leg.video_frames() for leg in legs),
        "legs": len(legs),
        "ages": {
            "to_teller": [a for c in calls for a in c.teller.arrivals.ages_ms],
            "to_customer": [a for c in calls for a in c.customer.arrivals.ages_ms],
        },
    }


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


async def serve(args: argparse.Namespace) -> None:
    add_media, pump = media_for(args)
    calls: list[Call] = []
    limit = asyncio.Semaphore(4)  # calls being set up at once by this worker
    async with httpx.AsyncClient(base_url=args.desk, timeout=60) as http:
        tokens = (await http.get(f"/bench/tellers/{args.business}")).json()
        tellers = Tellers(http, tokens[: args.tellers])
        await tellers.start()
        print(json.dumps({"ready": True}), flush=True)

        async def one(session: str) -> Call | str:
            async with limit:
                try:
                    return await place_call(
                        http, tellers, session, args.business, add_media, pump is not None
                    )
                except Exception as err:  # a saturated machine: report it, carry on
                    return f"{session}: {type(err).__name__}: {err}"

        while line := await asyncio.to_thread(sys.stdin.readline):
            cmd = json.loads(line)
            if cmd["cmd"] == "start":
                ids = [f"s{cmd['first'] + i:04d}" for i in range(cmd["n"])]
                placed = await asyncio.gather(*(one(s) for s in ids))
                new = [c for c in placed if isinstance(c, Call)]
                calls += new
                reply: dict[str, Any] = {
                    "setup": [c.setup_ms for c in new],
                    "phases": [c.phases_ms for c in new],
                    "failed": [c for c in placed if isinstance(c, str)],
                }
            elif cmd["cmd"] == "snap":
                reply = await snapshot(calls, pump)
            elif cmd["cmd"] == "end":
                await asyncio.gather(*(end_call(http, c) for c in calls))
                reply, calls = {"ended": len(calls)}, []
            else:
                break
            print(json.dumps(reply), flush=True)
        await tellers.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desk", required=True)
    parser.add_argument("--business", required=True)
    parser.add_argument("--tellers", type=int, required=True)
    parser.add_argument("--clip", help="the pickled pre-encoded clip")
    parser.add_argument("--live", action="store_true", help="live stamped frames, decoded")
    parser.add_argument("--aiortc-rtp", action="store_true",
                        help="send and count through aiortc's own RTP path (slow)")  # fmt: skip
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
