"""One participant's side of a call through Janus with a desk grant: publish, subscribe,
count what arrives, read receiver statistics.

Used by ``bench/calls.py`` for both the terminal (customer) and the teller of every
simulated session. ``Leg.join`` publishes the media ``add_media`` puts on a new
PeerConnection as the grant's feed, then subscribes to the peer's feed (retrying while
Janus answers 428, i.e. the peer has not published yet). Frames are counted as they come
off the receiving tracks: ``Assembled`` records when receivers count instead of decoding,
``VideoFrame``s (with the capture-time barcode read) when they decode.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from cloud.media.errors import VideoRoomError
from janus_client.janus import JanusClient
from janus_client.videoroom import VideoRoom
from tests.callbench import barcode
from tests.callbench.fastpath import Inbound
from tests.callbench.media import HEIGHT, Assembled

NO_SUCH_FEED = 428


@dataclass
class Arrivals:
    """What one subscriber received: frames per kind, first picture, glass-to-glass ages."""

    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    first_picture: float | None = None  # monotonic time of the first keyframe / frame
    ages_ms: list[int] = field(default_factory=list)
    picture: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, item: object) -> None:
        if isinstance(item, Assembled):
            self.frames[item.kind] += 1
            if item.keyframe and self.first_picture is None:
                self.first(item.at)
        elif isinstance(item, VideoFrame):
            self.frames["video"] += 1
            now = time.time()
            if self.first_picture is None:
                self.first(time.monotonic())
            stamp = barcode.read(item.to_ndarray(format="yuv420p")[:HEIGHT])
            if stamp is not None:
                self.ages_ms.append(barcode.age_ms(stamp, now))
        else:
            self.frames["audio"] += 1

    def first(self, at: float) -> None:
        self.first_picture = at
        self.picture.set()


@dataclass
class Leg:
    """A joined participant: its two PeerConnections and what it received."""

    stack: contextlib.AsyncExitStack
    publisher: RTCPeerConnection
    subscriber: RTCPeerConnection
    arrivals: Arrivals
    tasks: list[asyncio.Task[None]]
    #: set when packets are counted off the socket (``fastpath``) instead of by aiortc
    inbound: Inbound | None = None

    @classmethod
    async def join(
        cls,
        grant: dict[str, Any],
        add_media: Callable[[RTCPeerConnection], None],
        fast_receive: bool = False,
    ) -> Leg:
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(JanusClient(grant["janus_url"], grant["token"]))
        session = await stack.enter_async_context(client.session())
        publisher = RTCPeerConnection()
        stack.push_async_callback(publisher.close)
        add_media(publisher)
        await publisher.setLocalDescription(await publisher.createOffer())
        pub = await VideoRoom.attach(session)
        offer = {"type": "offer", "sdp": publisher.localDescription.sdp}
        joined = await pub.publish(grant["room"], grant["feed"], offer, pin=grant.get("pin"))
        await publisher.setRemoteDescription(RTCSessionDescription(**joined.answer))

        sub = await VideoRoom.attach(session)
        for _ in range(150):
            try:
                sub_offer = await sub.subscribe(
                    grant["room"], [grant["peer_feed"]], pin=grant.get("pin")
                )
                break
            except VideoRoomError as err:
                if err.code != NO_SUCH_FEED:
                    raise
                await asyncio.sleep(0.1)
        else:
            raise TimeoutError(f"{grant['peer_feed']} never published in {grant['room']}")
        subscriber = RTCPeerConnection()
        stack.push_async_callback(subscriber.close)
        leg = cls(stack, publisher, subscriber, Arrivals(), [])
        subscriber.on("track", leg._consume)
        await subscriber.setRemoteDescription(RTCSessionDescription(**sub_offer))
        await subscriber.setLocalDescription(await subscriber.createAnswer())
        if fast_receive:
            leg.inbound = Inbound(subscriber, leg.arrivals.first)
        await sub.start({"type": "answer", "sdp": subscriber.localDescription.sdp})
        return leg

    def _consume(self, track: MediaStreamTrack) -> None:
        async def pull() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    self.arrivals.add(await track.recv())

        self.tasks.append(asyncio.create_task(pull()))

    async def received(self) -> dict[int, tuple[str, int, int]]:
        """Per received RTP stream (SSRC): kind, packets received, packets lost so far."""
        if self.inbound is not None:
            return {ssrc: (s.kind, s.received, s.lost) for ssrc, s in self.inbound.streams.items()}
        return {
            stats.ssrc: (stats.kind, stats.packetsReceived, stats.packetsLost)
            for stats in (await self.subscriber.getStats()).values()
            if stats.type == "inbound-rtp"
        }

    def video_frames(self) -> int:
        """Complete video frames received so far."""
        if self.inbound is not None:
            return sum(s.frames for s in self.inbound.streams.values())
        return self.arrivals.frames["video"]

    async def leave(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.stack.aclose()
