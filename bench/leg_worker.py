"""The media of ``bench/failover_load.py``'s calls, in a process of its own.

The benchmark's own process holds hundreds of MQTT terminals and the teller pages; sending and
counting the calls' RTP there starved their keepalives on a loaded machine (the broker then
dropped the terminals, and the desk rightly failed their calls). Each of these workers joins
both legs of the calls it is given (``tests.callbench.legs.Leg``: aiortc for ICE/DTLS/SRTP,
``fastpath`` for the packets of a pre-encoded clip) and counts what arrives. One JSON object
a line on stdin, each answered with the same ``rid`` on stdout:

- ``{"rid": 1, "cmd": "join", "session": s, "grants": [customer, teller]}`` → ``{"ok": true}``
  once both legs see a picture, or ``{"ok": false, "error": why}`` (the legs are left);
- ``{"rid": 2, "cmd": "snap"}`` → ``{"calls": {session: [customer frames, teller frames,
  [peer connection states]]}, "dropped": [the pump's failed streams]}``;
- ``{"rid": 3, "cmd": "leave", "session": s}``; ``{"cmd": "quit"}``.

    started by bench/failover_load.py: leg_worker.py --clip FILE
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pickle
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.callbench import fastpath
from tests.callbench.legs import Leg


class Legs:
    def __init__(self, pump: fastpath.Pump) -> None:
        self.pump = pump
        self.calls: dict[str, tuple[Leg, Leg]] = {}

    async def join(self, session: str, grants: list[dict[str, Any]]) -> dict[str, Any]:
        joined = await asyncio.gather(
            *(Leg.join(g, self.pump.add_clip, True) for g in grants), return_exceptions=True
        )
        legs = [leg for leg in joined if isinstance(leg, Leg)]
        try:
            errors = [repr(e) for e in joined if isinstance(e, BaseException)]
            if errors:
                raise RuntimeError(f"a leg did not join: {errors}")
            pictures = (leg.arrivals.picture.wait() for leg in legs)
            await asyncio.wait_for(asyncio.gather(*pictures), 60)
        except (RuntimeError, TimeoutError) as err:
            await _leave(legs)
            return {"ok": False, "error": f"{type(err).__name__} {err}"}
        self.calls[session] = (legs[0], legs[1])
        return {"ok": True}

    def snap(self) -> dict[str, Any]:
        calls = {
            session: [
                customer.video_frames(),
                teller.video_frames(),
                [
                    pc.connectionState
                    for leg in (customer, teller)
                    for pc in (leg.publisher, leg.subscriber)
                ],
            ]
            for session, (customer, teller) in self.calls.items()
        }
        return {"calls": calls, "dropped": list(self.pump.dropped)}

    async def leave(self, session: str) -> dict[str, Any]:
        legs = self.calls.pop(session, None)
        if legs is not None:
            await _leave(list(legs))
        return {"ok": True}


async def _leave(legs: list[Leg]) -> None:
    for leg in legs:
        with contextlib.suppress(Exception):  # tidying up only
            await leg.leave()


async def serve(clip: bytes) -> None:
    pump = fastpath.Pump(fastpath.Packetised.of(pickle.loads(clip)))
    legs = Legs(pump)
    busy: set[asyncio.Task[None]] = set()

    async def answer(cmd: dict[str, Any]) -> None:
        if cmd["cmd"] == "join":
            reply = await legs.join(cmd["session"], cmd["grants"])
        elif cmd["cmd"] == "snap":
            reply = legs.snap()
        else:
            reply = await legs.leave(cmd["session"])
        print(json.dumps({"rid": cmd["rid"], **reply}), flush=True)

    print(json.dumps({"ready": True}), flush=True)
    while line := await asyncio.to_thread(sys.stdin.readline):
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        task = asyncio.create_task(answer(cmd))
        busy.add(task)
        task.add_done_callback(busy.discard)
    await asyncio.gather(*busy, return_exceptions=True)
    for session in list(legs.calls):
        await legs.leave(session)
    await pump.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", required=True, help="the pickled pre-encoded clip")
    asyncio.run(serve(Path(parser.parse_args().clip).read_bytes()))


if __name__ == "__main__":
    main()
