"""A terminal's call over a simulated village link: the harness of the weak-link tests and bench.

The terminal is the real ``TellerClient`` with ``RoomPeer`` and ``CallMedia`` (simulated
camera with a face, tone microphone), its ICE relay-only and its TURN server the
``UdpRelay`` in front of coturn: every packet the terminal sends or receives passes the
impaired link. The teller is an aiortc peer on loopback straight to Janus (the desk side
of the call sits in the cloud, on a good network). coturn listens and relays on this host's
own address (``relay_coturn``: Janus offers no loopback candidates), the relay listens on
127.0.0.1: nothing leaves the machine.

``village_terminal`` is the terminal side alone; ``browser_weaklink`` puts the production
teller (the teller page in headless Chromium) at the other end of it.

``freezes`` and ``audio_gaps`` read what the teller received (``Seen``): pure functions of
the arrival times and audio timestamps.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from cloud.media.turn import turn_credentials
from cuntong.servers.coturn import Coturn
from cuntong.servers.impair import Impairment
from cuntong.servers.janus import Janus
from cuntong.servers.udprelay import RelayThread, UdpRelay
from edge.teller import encoding, receive
from edge.teller.call import Phase
from edge.teller.client import TellerClient
from edge.teller.media import CallMedia
from edge.teller.paperwork import Paperwork
from edge.teller.peer import RoomPeer
from tests.helpers import eventually
from tests.terminal.teller_side import TellerPeer, connect_message, open_room


def village(rate_kbps: float = 300, rtt_ms: float = 200, loss: float = 0.03) -> Impairment:
    """One direction of the village link: half the RTT, a tenth of it as jitter."""
    return Impairment(rate_kbps=rate_kbps, delay_ms=rtt_ms / 2, jitter_ms=rtt_ms / 20, loss=loss)


@dataclass
class WeakCall:
    relay: UdpRelay | RelayThread
    client: TellerClient
    teller: TellerPeer
    setup_s: float

    @property
    def peer(self) -> RoomPeer:
        peer = self.client.peer
        assert isinstance(peer, RoomPeer)
        return peer


async def _is(value: bool) -> bool:
    return value


@dataclass
class VillageTerminal:
    """The terminal behind the impaired link, before its call is connected."""

    relay: UdpRelay | RelayThread
    client: TellerClient
    turn_url: str
    turn_secret: str

    async def connect(self, janus: Janus, room: str, token: str) -> float:
        """Hand the terminal its connect message; waits until it is in the call and returns
        the monotonic time the message was handed over (the setup clock's start)."""
        now = dt.datetime.now(dt.UTC)
        cred = turn_credentials(self.turn_secret, "terminal-weak", now)
        connect = connect_message(janus, room, token, room)
        connect["ice_servers"] = [cred.ice_server([self.turn_url])]
        t0 = time.monotonic()
        await self.client.on_desk(orjson.dumps(connect))
        await eventually(lambda: _is(self.client.call.phase is Phase.IN_CALL), 60, every=0.02)
        return t0

    @property
    def peer(self) -> RoomPeer:
        peer = self.client.peer
        assert isinstance(peer, RoomPeer)
        return peer


@contextlib.asynccontextmanager
async def village_terminal(
    coturn: Coturn,
    up: Impairment,
    down: Impairment,
    link_kbps: float = 300,
    seed: int = 1,
    room: str = "weak",
    nice: int = 0,
    relay_thread: bool = False,
    retransmit_share: float = 0.25,
    pacing_share: float = 0.85,
) -> AsyncIterator[VillageTerminal]:
    """The terminal's ``TellerClient``/``RoomPeer``/``CallMedia``, relay-only, its TURN server
    the impairment relay in front of ``coturn``; queued for ``room``. The call ends on exit.

    ``nice``: the call's media send path at that nice value, as the agent's ``call_media_nice``
    (``edge.teller.priority``); ``relay_thread``: the relay on its own thread
    (``RelayThread``), so raising the terminal's loop thread does not raise the link;
    ``retransmit_share``, ``pacing_share``: the agent's ``call_retransmit_share`` and
    ``call_pacing_share``."""
    # The terminal sizes its encoders from the loss it expects, as the agent does from its
    # configured link: above 3% loss that means Opus in-band FEC and 40 ms packets.
    media = CallMedia(simulate=True, link_kbps=link_kbps, link_loss=up.loss, face_aware=False,
                      nice=nice, retransmit_share=retransmit_share,
                      pacing_share=pacing_share)  # fmt: skip

    async def publish(payload: bytes) -> None:
        return None

    async def no_capture(kind: str) -> None:
        return None

    server = (coturn.cfg.listen_ip, coturn.cfg.port)
    link = RelayThread if relay_thread else UdpRelay
    async with link(server, up, down, seed=seed) as relay:
        client = TellerClient(
            publish,
            lambda grant, on_text, on_event: RoomPeer(
                grant, media, on_text, on_event, relay_only=True
            ),
            lambda send: Paperwork(send, no_capture),
            lambda: dt.datetime.now(dt.UTC),
        )
        await client.ask("pension")
        rid = client.call.request_id
        await client.on_desk(orjson.dumps({"type": "queued", "request_id": rid, "session": room}))
        turn_url = f"turn:{relay.address[0]}:{relay.address[1]}?transport=udp"
        terminal = VillageTerminal(relay, client, turn_url, coturn.cfg.static_auth_secret)
        try:
            yield terminal
        finally:
            await client.end()
            encoding.reset()


@contextlib.asynccontextmanager
async def weak_call(
    janus: Janus,
    coturn: Coturn,
    up: Impairment,
    down: Impairment,
    link_kbps: float = 300,
    seed: int = 1,
    room: str = "weak",
    teller_receive_path: bool = True,
) -> AsyncIterator[WeakCall]:
    """Connect a call over the impaired link; yields once the teller sees the customer.

    The real teller is Chromium (``browser_weaklink`` measures it), whose receiver gives up
    on a lost packet and asks for a keyframe, and conceals lost audio; aiortc's own receiver
    does neither. With ``teller_receive_path`` the aiortc teller receives through the
    terminal's receive path (``edge.teller.receive``), so what is measured is the terminal's
    sending, not aiortc's receiver; without it, aiortc's stock receiver."""
    customer_token, teller_token = await open_room(janus, room)
    async with village_terminal(coturn, up, down, link_kbps, seed, room) as terminal:
        teller = TellerPeer(janus, teller_token, room)
        if teller_receive_path:
            teller.prepare_receiver = receive.install
        async with teller.joined():
            t0 = await terminal.connect(janus, room, customer_token)
            await teller.subscribe_customer()
            await eventually(lambda: _is(teller.seen.video > 0), 60, every=0.02)
            yield WeakCall(terminal.relay, terminal.client, teller, time.monotonic() - t0)


def freezes(arrivals: list[float], threshold_s: float = 0.5) -> list[float]:
    """Gaps between consecutive received video frames longer than ``threshold_s``."""
    return [b - a for a, b in itertools.pairwise(arrivals) if b - a > threshold_s]


def audio_gaps(frames: list[tuple[float, int, int, str | None]]) -> list[float]:
    """Holes in the received audio timeline, in seconds: a jump in the decoder's timestamps
    beyond the frame before it is audio that never came out of the decoder (not concealed)."""
    spans = sorted((pts, samples) for _, pts, samples, _ in frames)
    return [(b - a - n) / 48_000 for (a, n), (b, _) in itertools.pairwise(spans)
            if b - a > n]  # fmt: skip


def concealed_runs(frames: list[tuple[float, int, int, str | None]]) -> list[float]:
    """Runs of concealed (``"plc"``) audio, in seconds: sound the decoder made up."""
    runs, run = [], 0
    for _, _, samples, kind in sorted(frames, key=lambda f: f[1]):
        if kind == "plc":
            run += samples
        elif run:
            runs.append(run / 48_000)
            run = 0
    return runs + ([run / 48_000] if run else [])
