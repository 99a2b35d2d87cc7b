"""The terminal's call over a village link: 300 kbit/s, 200 ms RTT, 3% loss, and a 2 s outage.

Real Janus and coturn on loopback, the terminal's own ``TellerClient``/``RoomPeer`` with
relay-only ICE through the impairment relay in front of coturn (``weaklink``): every packet
of the terminal's call crosses the impaired link. Correctness only (the figures are the
bench's, ``bench/weak_link.py``): the call connects over that link, media flows both ways
through the relay, lost audio is recovered from Opus in-band FEC, and after a 2 s outage the
teller sees the customer again without the terminal rebuilding the call.
"""

from __future__ import annotations

import asyncio

from cuntong.servers.coturn import Coturn
from cuntong.servers.janus import Janus
from edge.teller.call import Phase
from edge.teller.peer import RoomPeer
from tests.helpers import eventually
from tests.teller.test_turn_relay import nominated_types
from tests.teller.weaklink import village, weak_call


async def test_call_connects_over_a_lossy_village_link_and_recovers_from_an_outage(
    janus: Janus, relay_coturn: Coturn
) -> None:
    coturn = relay_coturn
    link = village(rate_kbps=300, rtt_ms=200, loss=0.03)
    # pytest-timeout's alarm can land inside an asyncio callback, which swallows it: the
    # test's own deadline (a full run once hung here past the 180 s limit).
    async with asyncio.timeout(150):
        async with weak_call(janus, coturn, link, link) as call:
            relay, seen, peer = call.relay, call.teller.seen, call.peer
            assert peer._pub_pc is not None
            assert set(nominated_types(peer._pub_pc)) == {"relay"}  # through coturn, so the relay

            async def flowing(frames: int) -> bool:
                return seen.video >= frames and peer.incoming.frames["video"] > 0

            connected = seen.video
            await eventually(lambda: flowing(connected + 20), 30, every=0.1)
            # Media crossed the relay both ways, and the loss was really there.
            await eventually(
                lambda: _is(min(relay.up.stats.delivered, relay.down.stats.delivered) > 200), 30
            )
            await eventually(lambda: _is(relay.up.stats.lost > 0 and relay.down.stats.lost > 0), 30)
            # The terminal sends in-band FEC on this link, and the receive path uses it: lost
            # audio packets come back from the next packet (``edge.teller.receive``).
            await eventually(lambda: _is(any(f[3] == "fec" for f in seen.audio_at)), 30)
            # The video goes through the pacer (``edge.teller.pacing``), the audio does not:
            # every video packet sent (and a resent one) passed it, and some were held back
            # (a keyframe on this link is more than its burst).
            await _paced_video_only(peer)

            relay.outage(2.0)
            await asyncio.sleep(2.0)
            assert relay.up.stats.outage_dropped > 0 and relay.down.stats.outage_dropped > 0
            after_outage = seen.video
            # The customer's video and the teller's both come back on the same call.
            teller_frames = peer.incoming.frames["video"]
            await eventually(lambda: flowing(after_outage + 20), 30, every=0.1)
            await eventually(
                lambda: _is(peer.incoming.frames["video"] > teller_frames + 20), 30, every=0.1
            )
            assert call.client.call.phase is Phase.IN_CALL
            assert peer.publications == 1  # recovered in place, not rebuilt


async def _paced_video_only(peer: RoomPeer) -> None:
    assert peer.paced is not None and peer._pub_pc is not None
    before = peer.paced.packets
    sent = {"audio": 0, "video": 0}
    for stat in (await peer._pub_pc.getStats()).values():
        if stat.type == "outbound-rtp":
            sent[stat.kind] += stat.packetsSent
    resent = peer.retransmissions.sent if peer.retransmissions else 0
    # A packet is counted by the pacer when offered, by the stats once sent; at most the
    # pacer's half second of held packets is in between.
    assert sent["video"] <= peer.paced.packets, (sent, peer.paced)
    assert before <= sent["video"] + resent + 30, (sent, resent, peer.paced)
    assert sent["audio"] > 50  # the audio flowed beside it (25 packets a second), unpaced
    assert peer.paced.held > 0


async def _is(value: bool) -> bool:
    return value
