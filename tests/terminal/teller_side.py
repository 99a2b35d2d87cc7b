"""The other end of the call for the terminal tests: a scripted desk and an aiortc teller.

``ScriptedDesk`` reads the terminal's session messages and publishes desk messages over the
mTLS broker with a cloud service certificate, and makes rooms and tokens with the Janus
admin API, as the real desk does. ``TellerPeer`` publishes a tone and moving frames plus a
data channel as ``teller`` and subscribes to ``customer``, collecting what arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from common.topics import Channel, topic
from common.wire import call as wire
from common.wire import datachannel as channel
from cuntong.servers.janus import Janus
from edge.teller.sources import latency_ms
from janus_client.janus import JanusAdmin, JanusClient
from janus_client.videoroom import RoomSpec, VideoRoom
from provisioning import wiring
from tests.teller.peers import BarsTrack, ToneTrack
from tests.terminal.conftest import DESK_SERVICE


@dataclass
class ScriptedDesk:
    tid: str
    mqtt: aiomqtt.Client | None = None
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    online: asyncio.Event = field(default_factory=asyncio.Event)

    async def say(self, msg: dict[str, Any]) -> None:
        await asyncio.wait_for(self.online.wait(), 15)
        assert self.mqtt is not None
        await self.mqtt.publish(topic(self.tid, Channel.DESK), orjson.dumps(msg), qos=1)

    async def next(self, kind: str, timeout: float = 15.0) -> dict[str, Any]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.inbox.get()
                if msg["type"] == kind:
                    return msg


@contextlib.asynccontextmanager
async def scripted_desk(pki: Path, port: int, tid: str) -> AsyncIterator[ScriptedDesk]:
    """The desk's MQTT side; it reconnects when the broker restarts under it, as the
    real desk link does."""
    tls = wiring.service_tls_context(pki, DESK_SERVICE, dt.datetime.now(dt.UTC))
    desk = ScriptedDesk(tid)

    async def run() -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    port,
                    identifier=f"svc.{DESK_SERVICE}",
                    protocol=aiomqtt.ProtocolVersion.V5,
                    tls_context=tls,
                ) as mqtt:
                    await mqtt.subscribe(topic(tid, Channel.SESSION), qos=1)
                    desk.mqtt = mqtt
                    desk.online.set()
                    async for message in mqtt.messages:
                        assert isinstance(message.payload, bytes)
                        desk.inbox.put_nowait(wire.parse_session(message.payload).to_dict())
            except aiomqtt.MqttError:
                desk.online.clear()
                await asyncio.sleep(0.2)

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(desk.online.wait(), 15)
        yield desk
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def open_room(janus: Janus, room: str) -> tuple[str, str]:
    """A room made with the room admin key, and two fresh tokens (customer, teller)."""
    customer, teller, backend = (secrets.token_hex(8) for _ in range(3))
    async with JanusAdmin(janus.admin_url, janus.cfg.admin_secret) as admin:
        for token in (customer, teller, backend):
            await admin.add_token(token)
    async with JanusClient(janus.url, backend) as client, client.session() as session:
        control = await VideoRoom.attach(session)
        await control.create_room(RoomSpec(room), janus.cfg.room_admin_key)
    return customer, teller


def connect_message(janus: Janus, session: str, token: str, room: str) -> dict[str, Any]:
    return {
        "type": "connect",
        "session": session,
        "role": "customer",
        "janus_url": janus.url,
        "token": token,
        "room": room,
        "feed": "customer",
        "peer_feed": "teller",
        "ice_servers": [],
    }


@dataclass
class Seen:
    """What the teller got from the customer."""

    video: int = 0
    audio: int = 0
    loudest: int = 0
    latencies: list[float] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    #: monotonic arrival of every video frame, and (arrival, pts, samples, kind) of every
    #: audio frame (kind: the decoder's ``frame.opaque``, "decoded"/"fec"/"plc" from
    #: ``edge.teller.receive``, None from aiortc's own): what the weak-link tests and bench
    #: read freezes, frame rate and audio gaps from
    video_at: list[float] = field(default_factory=list)
    audio_at: list[tuple[float, int, int, str | None]] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)


class TellerPeer:
    def __init__(self, janus: Janus, token: str, room: str) -> None:
        self.janus, self.token, self.room = janus, token, room
        self.seen = Seen()
        self._pcs: list[RTCPeerConnection] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._reassembler = channel.Reassembler()
        self.channel: Any = None
        self.on_video: Callable[[VideoFrame], None] | None = None
        #: run on the subscription's peer connection before media flows (the weak-link
        #: bench gives the teller the terminal's receive path, ``edge.teller.receive``)
        self.prepare_receiver: Callable[[RTCPeerConnection], None] | None = None

    @contextlib.asynccontextmanager
    async def joined(self) -> AsyncIterator[TellerPeer]:
        async with JanusClient(self.janus.url, self.token) as client, client.session() as s:
            self.session = s
            pc = RTCPeerConnection()
            self._pcs.append(pc)
            pc.addTrack(ToneTrack())
            pc.addTrack(BarsTrack())
            self.channel = pc.createDataChannel("cuntong")
            await pc.setLocalDescription(await pc.createOffer())
            pub = await VideoRoom.attach(s)
            joined = await pub.publish(
                self.room, "teller", {"type": "offer", "sdp": pc.localDescription.sdp}
            )
            await pc.setRemoteDescription(RTCSessionDescription(**joined.answer))
            try:
                yield self
            finally:
                for task in self._tasks:
                    task.cancel()
                for pc in self._pcs:
                    await pc.close()

    async def subscribe_customer(self) -> None:
        sub = await VideoRoom.attach(self.session)
        offer = await sub.subscribe(self.room, ["customer"])
        pc = RTCPeerConnection()
        self._pcs.append(pc)
        pc.on("track", self._consume)
        pc.on("datachannel", lambda ch: ch.on("message", self._text))
        await pc.setRemoteDescription(RTCSessionDescription(**offer))
        if self.prepare_receiver is not None:
            self.prepare_receiver(pc)
        pc.createDataChannel("cuntong").on("message", self._text)  # Janus relays once open
        await pc.setLocalDescription(await pc.createAnswer())
        await sub.start({"type": "answer", "sdp": pc.localDescription.sdp})

    def send(self, msg: dict[str, Any]) -> None:
        for part in channel.encode(msg):
            self.channel.send(part)

    def _text(self, text: str | bytes) -> None:
        whole = self._reassembler.feed(text)
        if whole is not None:
            self.seen.texts.append(channel.parse(whole, channel.TERMINAL_TYPES))

    def _consume(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(self._pull(track)))

    async def _pull(self, track: MediaStreamTrack) -> None:
        import numpy as np

        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self.seen.video_at.append(time.monotonic())
                    if self.on_video is not None:
                        self.on_video(frame)
                    self.seen.video += 1
                    self.seen.size = (frame.width, frame.height)
                    if self.seen.video % 5 == 0:
                        now = dt.datetime.now(dt.UTC)
                        delay = latency_ms(frame.to_ndarray(format="rgb24"), now)
                        if delay is not None:
                            self.seen.latencies.append(delay)
                else:
                    self.seen.audio_at.append(
                        (time.monotonic(), int(frame.pts or 0), frame.samples, frame.opaque)
                    )
                    self.seen.audio += 1
                    pcm = np.frombuffer(bytes(frame.planes[0]), np.int16)
                    self.seen.loudest = max(self.seen.loudest, int(np.abs(pcm).max()))
