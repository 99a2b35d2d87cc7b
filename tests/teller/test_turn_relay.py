"""A call whose media goes only through coturn, with the desk's time-limited credentials.

Real coturn (``use-auth-secret``), real Janus, the desk handing out TURN REST credentials
in both grants. The teller is headless Chromium with ``iceTransportPolicy: "relay"``, the
customer an aiortc peer with the same policy: neither gathers a host candidate, so
the only way media can flow is through a relay allocation on coturn. coturn listens and
relays on the host's own address (Janus never offers loopback candidates), as it would
on the edge of the cloud network. Checked from both
ends: Chromium's selected candidate pairs (``getStats``) have a relay local candidate and
carry bytes, and the browser decodes the customer's video; the aiortc peer's nominated
pair is relayed and it receives the browser's frames. An expired and a forged credential
are refused by coturn (401 in the browser's ``icecandidateerror``) and leave a relay-only
peer with no candidate at all, so a call with bad credentials fails before it starts.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from playwright.async_api import Page, async_playwright

from cloud.media.pool import JanusPool, NodeAccess
from cloud.media.turn import turn_credentials
from cloud.sessions.desk import Desk
from cloud.sessions.grants import Message, TurnConfig
from cloud.sessions.routing import Board, TellerState
from cloud.sessions.skills import Skills
from cuntong.servers.coturn import Coturn
from cuntong.servers.janus import Janus
from janus_client.janus import JanusClient
from janus_client.videoroom import VideoRoom
from tests.teller.browser import CHROMIUM, FLAGS
from tests.teller.peers import BarsTrack, Received, ToneTrack

GATHER_WITH = """async ([servers]) => {
  const pc = new RTCPeerConnection({iceServers: servers, iceTransportPolicy: "relay"});
  const errors = [], candidates = [];
  pc.addEventListener("icecandidateerror", (e) => errors.push(e.errorCode));
  pc.addEventListener("icecandidate", (e) => {
    if (e.candidate) candidates.push(e.candidate.type);
  });
  pc.addTransceiver("audio");
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  pc.close();
  return {errors, candidates};
}"""


def relay_only(ice_servers: list[dict[str, Any]]) -> RTCConfiguration:
    servers = [RTCIceServer(**s) for s in ice_servers]
    return RTCConfiguration(servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY)


def nominated_types(pc: RTCPeerConnection) -> list[str]:
    """Local candidate types of the pairs aioice nominated (aiortc has no pair stats)."""
    types = []
    for transceiver in pc.getTransceivers():
        ice = transceiver.sender.transport.transport
        types += [p.local_candidate.type for p in ice._connection._nominated.values()]
    return types


def candidate_types(sdp: str) -> set[str]:
    return {line.split(" typ ")[1].split()[0] for line in sdp.splitlines() if " typ " in line}


async def customer_call(
    session: Any, grant: Message
) -> tuple[RTCPeerConnection, RTCPeerConnection, Received]:
    """The customer publishes tone + frames and subscribes to the teller, relay only."""
    config = relay_only(grant["ice_servers"])
    pub_pc = RTCPeerConnection(config)
    pub_pc.addTrack(ToneTrack())
    pub_pc.addTrack(BarsTrack())
    await pub_pc.setLocalDescription(await pub_pc.createOffer())
    assert candidate_types(pub_pc.localDescription.sdp) == {"relay"}
    pub = await VideoRoom.attach(session)
    offer = {"type": "offer", "sdp": pub_pc.localDescription.sdp}
    joined = await pub.publish(grant["room"], grant["feed"], offer, pin=grant.get("pin"))
    await pub_pc.setRemoteDescription(RTCSessionDescription(**joined.answer))

    sub = await VideoRoom.attach(session)
    sub_pc, got = RTCPeerConnection(config), Received()
    sub_pc.on("track", got.consume)
    for _ in range(60):  # the browser publishes a moment after accepting
        feeds = {p["id"] for p in await pub.participants(grant["room"]) if p["publisher"]}
        if grant["peer_feed"] in feeds:
            break
        await asyncio.sleep(0.25)
    await sub_pc.setRemoteDescription(
        RTCSessionDescription(
            **await sub.subscribe(grant["room"], [grant["peer_feed"]], pin=grant.get("pin"))
        )
    )
    await sub_pc.setLocalDescription(await sub_pc.createAnswer())
    await sub.start({"type": "answer", "sdp": sub_pc.localDescription.sdp})
    return pub_pc, sub_pc, got


async def wait_decoded(page: Page, frames: int) -> int:
    for _ in range(60):
        if (n := await page.evaluate("window.decoded()")) >= frames:
            return int(n)
        await asyncio.sleep(0.25)
    return int(await page.evaluate("window.decoded()"))


async def test_call_through_coturn_with_relay_only_ice(
    cors_janus: Janus, relay_coturn: Coturn, site: str, tmp_path: Path
) -> None:
    janus, coturn, rec_dir = cors_janus, relay_coturn, tmp_path / "rec"
    rec_dir.mkdir()
    inbox: list[tuple[str, Message]] = []

    async def notify(address: str, message: Message) -> None:
        inbox.append((address, message))

    board = Board()
    now = datetime.now(UTC)
    board.add_teller("web", Skills.of({"pension": 5}, {"cmn"}), now.timestamp())
    board.set_state("web", TellerState.AVAILABLE, now.timestamp())
    turn = TurnConfig(coturn.cfg.static_auth_secret, (coturn.url,), timedelta(minutes=10))
    node = NodeAccess("j1", janus.url, janus.admin_url, janus.cfg.admin_secret,
                      janus.cfg.room_admin_key, str(rec_dir))  # fmt: skip
    async with JanusPool([node]) as pool, async_playwright() as pw:
        desk = Desk(board, pool, notify, lambda: datetime.now(UTC), turn=turn)
        await desk.request("s-relay", "T0202", "pension", "cmn", elderly=False)
        teller = (await desk.accept("web", "s-relay")).message()
        customer = next(m for a, m in inbox if a == "terminal:T0202" and m["type"] == "connect")
        for grant in (teller, customer):
            [server] = grant["ice_servers"]
            assert server["urls"] == [coturn.url] and server["username"].count(":") == 1

        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page()
        await page.goto(f"{site}/index.html")
        async with (
            JanusClient(customer["janus_url"], customer["token"]) as client,
            client.session() as session,
        ):
            started = asyncio.create_task(
                page.evaluate("g => window.start(g, {iceTransportPolicy: 'relay'})", teller)
            )
            pub_pc, sub_pc, got = await customer_call(session, customer)
            await asyncio.wait_for(started, 30)

            assert await wait_decoded(page, 10) >= 10  # the customer's video, relayed
            pairs = await page.evaluate("window.pairs()")
            for side in ("publisher", "subscriber"):
                assert pairs[side], side
                for pair in pairs[side]:
                    assert (pair["local"], pair["state"]) == ("relay", "succeeded"), pair
            # the relayed pairs carry the media (the customer's flat frames are small)
            assert pairs["subscriber"][0]["bytesReceived"] > 2_000
            assert pairs["publisher"][0]["bytesSent"] > 2_000

            await asyncio.wait_for(got.first_video, 20)  # the browser's camera, relayed
            assert set(nominated_types(pub_pc)) == set(nominated_types(sub_pc)) == {"relay"}
            assert candidate_types(sub_pc.localDescription.sdp) == {"relay"}

            # Bad credentials: coturn says 401 and a relay-only peer has nothing to offer.
            secret = coturn.cfg.static_auth_secret
            expired = turn_credentials(secret, "teller-web", now - timedelta(hours=3))
            forged = turn_credentials("not-the-secret", "teller-web", now)
            for cred in (expired, forged):
                result = await page.evaluate(GATHER_WITH, [[cred.ice_server([coturn.url])]])
                assert result["candidates"] == [] and 401 in result["errors"], result
                bad_pc = RTCPeerConnection(relay_only([cred.ice_server([coturn.url])]))
                bad_pc.addTrack(ToneTrack())
                await bad_pc.setLocalDescription(await bad_pc.createOffer())
                assert candidate_types(bad_pc.localDescription.sdp) == set()
                await bad_pc.close()

            await got.stop()
            for pc in (pub_pc, sub_pc):
                await pc.close()
            await page.evaluate("window.call.leave()")
            await browser.close()
        await desk.hang_up("s-relay", "done")
