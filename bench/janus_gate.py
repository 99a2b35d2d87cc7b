"""What the cloud's Janus signalling gate adds to signalling (issue 21).

A secured cloud hands out grants whose Janus URL is its gate (``/media/janus/<node>``,
``cloud.api.routes.janus_gate``): every Janus API request and long poll of a call goes
through the cloud app, which reads joins and refuses (and audits) one outside the grant's
room. This bench runs the real cloud app (uvicorn, its desk and Janus pool;
``tests.teller.gaterig``) in front of a real Janus, places one call, has the customer
publish a tone and frames (aiortc) through the gate, and then times, ``--rounds`` times and
alternating the two paths, what a teller page does to watch the customer with the same
token: create a Janus session, attach VideoRoom, join as subscriber and get Janus's SDP
offer. Once straight to Janus, once through the gate. Also times a refused cross-room
join through the gate (refused, audited, reported to the misbehaviour watch).

    .venv/bin/python bench/janus_gate.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloud.media.errors import VideoRoomError
from cloud.sessions.routing import TellerState
from cloud.sessions.skills import Skills
from common import procs
from cuntong.servers.janus import Janus, JanusConfig
from janus_client.janus import JanusClient
from janus_client.videoroom import VideoRoom
from tests.teller import peers
from tests.teller.gaterig import audit_rows, gated_cloud

NO_SUCH_FEED = 428


async def watch_once(url: str, token: str, room: str, pin: str) -> float:
    """Seconds from opening a Janus session to holding the subscriber offer."""
    start = time.perf_counter()
    async with JanusClient(url, token) as c, c.session() as s:
        offer = await (await VideoRoom.attach(s)).subscribe(room, ["customer"], pin=pin)
        took = time.perf_counter() - start
    assert offer["type"] == "offer", offer
    return took


async def refused_once(url: str, token: str, room: str, pin: str) -> float:
    start = time.perf_counter()
    async with JanusClient(url, token) as c, c.session() as s:
        try:
            await (await VideoRoom.attach(s)).subscribe(room, ["customer"], pin=pin)
        except VideoRoomError as err:
            assert err.code == 433, err
            return time.perf_counter() - start
    raise AssertionError("a cross-room join was not refused")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(tmp: Path, janus: Janus, rounds: int) -> None:
    async with gated_cloud(tmp, janus) as cloud:
        desk = cloud.desk
        now = datetime.now(UTC).timestamp()
        for teller in ("t1", "t2"):
            desk.board.add_teller(teller, Skills.of({"pension": 5}, {"cmn"}), now)
            desk.board.set_state(teller, TellerState.AVAILABLE, now)
        await desk.request("call-1", "BG-1", "pension", "cmn", elderly=False)
        await desk.request("call-2", "BG-2", "pension", "cmn", elderly=False)
        teller = await desk.accept("t1", "call-1")
        await desk.accept("t2", "call-2")
        customer = desk.calls["call-1"].customer
        thief = desk.calls["call-2"].customer
        assert customer is not None and thief is not None
        assert teller.janus_url == cloud.gate_url
        async with JanusClient(customer.janus_url, customer.token) as c, c.session() as s:
            pc, _ = await peers.publish(await VideoRoom.attach(s), "call-1", "customer",
                                        customer.pin)  # fmt: skip
            # Wait until the feed is there (the first subscribe may race the publish).
            deadline = time.monotonic() + 30
            while True:
                try:
                    await watch_once(janus.url, teller.token, "call-1", teller.pin)
                    break
                except VideoRoomError as err:
                    if err.code != NO_SUCH_FEED or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
            paths = {"straight to Janus": janus.url, "through the gate": cloud.gate_url}
            took: dict[str, list[float]] = {name: [] for name in paths}
            for r in range(rounds):
                order = list(paths) if r % 2 == 0 else list(reversed(paths))
                for name in order:
                    took[name].append(
                        await watch_once(paths[name], teller.token, "call-1", teller.pin)
                    )
            refused = [
                await refused_once(cloud.gate_url, thief.token, "call-1", customer.pin)
                for _ in range(min(rounds, 20))
            ]
            await pc.close()
        audited = len(audit_rows(cloud.db))
        await desk.hang_up("call-1", "done")
        await desk.hang_up("call-2", "done")
    print("session + attach + subscriber join → SDP offer (teller watching the customer):")
    for name, values in took.items():
        print(
            f"  {name:18} n={len(values)}  p50 {pct(values, 0.5):6.1f} ms  "
            f"p95 {pct(values, 0.95):6.1f} ms  mean {statistics.fmean(values) * 1000:6.1f} ms"
        )
    diff = pct(took["through the gate"], 0.5) - pct(took["straight to Janus"], 0.5)
    print(f"  the gate adds {diff:+.1f} ms at p50")
    print(
        f"refused cross-room join through the gate: n={len(refused)}  "
        f"p50 {pct(refused, 0.5):.1f} ms  p95 {pct(refused, 0.95):.1f} ms; "
        f"audit rows written {audited}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cfg = JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1")
        janus = Janus(cfg, tmp / "janus").start()
        try:
            asyncio.run(run(tmp, janus, args.rounds))
        finally:
            janus.stop()
    print(f"reproduce: .venv/bin/python bench/janus_gate.py --rounds {args.rounds}")


if __name__ == "__main__":
    main()
