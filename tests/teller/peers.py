"""aiortc peers standing in for a terminal and a teller: synthetic video, a 440 Hz tone.

Shared by the media integration test and ``bench/sessions.py``. The tracks are cheap on
purpose (flat frames whose brightness moves, a sine tone) so two publishers and two
subscribers fit on a loaded 2-core machine. ``publish_with_data`` and ``subscribe(...,
on_text=)`` add the VideoRoom data channel; ``TerminalData`` answers the teller's messages
with the terminal's own code (``tests/teller/datachannel.py``).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import AudioFrame, VideoFrame

from common.wire import datachannel as channel
from janus_client.janus import JanusClient, JanusSession
from janus_client.videoroom import Joined, VideoRoom
from tests.teller.datachannel import Message, reply

WIDTH, HEIGHT = 320, 240
TONE_HZ = 440
#: the streams (title, kind, codec) the archiver's file of such a recorded call holds
RECORDED_STREAMS = [
    ("customer audio", "audio", "opus"),
    ("customer video", "video", "vp8"),
    ("teller audio", "audio", "opus"),
    ("teller video", "video", "vp8"),
]
#: the Janus tokens ``call_sessions`` uses: the backend's, the customer's, the teller's
CALL_TOKENS = ("backend", "customer-tok", "teller-tok")


@contextlib.asynccontextmanager
async def call_sessions(url: str) -> AsyncIterator[tuple[JanusSession, ...]]:
    """Janus sessions at ``url`` for the backend (room control), the customer and the
    teller, each on its own stored token (``CALL_TOKENS``, added beforehand)."""
    backend, customer, teller = CALL_TOKENS
    async with (
        JanusClient(url, backend) as control,
        control.session() as control_session,
        JanusClient(url, customer) as cust,
        cust.session() as cust_session,
        JanusClient(url, teller) as tel,
        tel.session() as tel_session,
    ):
        yield control_session, cust_session, tel_session


class ToneTrack(AudioStreamTrack):
    """A 440 Hz sine at about a third of full scale."""

    def __init__(self) -> None:
        super().__init__()
        self._n = 0

    async def recv(self) -> AudioFrame:
        frame = await super().recv()  # silence, correctly timed
        rate = frame.sample_rate
        samples = array.array(
            "h",
            (
                int(10_000 * math.sin(2 * math.pi * TONE_HZ * (self._n + i) / rate))
                for i in range(frame.samples)
            ),
        )
        self._n += frame.samples
        frame.planes[0].update(samples.tobytes())
        return frame


class BarsTrack(VideoStreamTrack):
    """Flat 320×240 frames whose brightness steps every frame (so VP8 has work to do)."""

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(WIDTH, HEIGHT, "yuv420p")
        shade = (pts // 3000) % 200 + 28
        for i, plane in enumerate(frame.planes):
            plane.update(bytes([shade if i == 0 else 128]) * plane.buffer_size)
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class Received:
    """What a subscriber got: frame counts, first-video time, loudest audio sample, size."""

    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    first_video: asyncio.Future[float] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    loudest: int = 0
    size: tuple[int, int] = (0, 0)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def consume(self, track: MediaStreamTrack) -> None:
        self.tasks.append(asyncio.create_task(self._pull(track)))

    async def _pull(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if isinstance(frame, VideoFrame):
                    self.size = (frame.width, frame.height)
                    if not self.first_video.done():
                        self.first_video.set_result(time.monotonic())
                elif isinstance(frame, AudioFrame):
                    pcm = array.array("h", bytes(frame.planes[0]))
                    self.loudest = max(self.loudest, max(map(abs, pcm), default=0))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def publish(
    room: VideoRoom, room_id: str, feed: str, pin: str | None = None
) -> tuple[RTCPeerConnection, Joined]:
    """Publish a tone and moving frames as ``feed``; returns the connection and the join."""
    pc = RTCPeerConnection()
    return pc, await _publish(pc, room, room_id, feed, pin)


async def publish_with_data(
    room: VideoRoom, room_id: str, feed: str, pin: str | None = None
) -> tuple[RTCPeerConnection, Joined, RTCDataChannel]:
    """``publish`` plus a data channel, which Janus relays to the feed's subscribers."""
    pc = RTCPeerConnection()
    channel = pc.createDataChannel("cuntong")
    return pc, await _publish(pc, room, room_id, feed, pin), channel


async def _publish(
    pc: RTCPeerConnection, room: VideoRoom, room_id: str, feed: str, pin: str | None = None
) -> Joined:
    pc.addTrack(ToneTrack())
    pc.addTrack(BarsTrack())
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"type": "offer", "sdp": pc.localDescription.sdp}
    joined = await room.publish(room_id, feed, offer, pin=pin)
    await pc.setRemoteDescription(RTCSessionDescription(**joined.answer))
    return joined


async def subscribe(
    room: VideoRoom,
    room_id: str,
    feeds: list[str],
    on_text: Callable[[str], None] | None = None,
    pin: str | None = None,
) -> tuple[RTCPeerConnection, Received]:
    """Subscribe to feeds; frames are counted into the returned Received as they arrive.
    ``on_text`` gets the text messages the feeds send on their data channels."""
    pc = RTCPeerConnection()
    received = Received()
    pc.on("track", received.consume)
    if on_text is not None:
        # Janus relays data to a subscriber only once the subscriber has opened a channel
        # (as janus.js does); it sends on the channel with the publisher's label, ours if the
        # labels match, or a new one it opens.
        pc.createDataChannel("cuntong").on("message", on_text)
        pc.on("datachannel", lambda channel: channel.on("message", on_text))
    offer = await room.subscribe(room_id, feeds, pin=pin)
    await pc.setRemoteDescription(RTCSessionDescription(**offer))
    await pc.setLocalDescription(await pc.createAnswer())
    await room.start({"type": "answer", "sdp": pc.localDescription.sdp})
    return pc, received


@dataclass
class TerminalData:
    """A simulated terminal's end of the data channel: hears the teller, answers by itself."""

    outgoing: RTCDataChannel
    heard: list[Message] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    reassembler: channel.Reassembler = field(default_factory=channel.Reassembler)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def on_text(self, text: str | bytes) -> None:
        whole = self.reassembler.feed(text)
        if whole is None:
            return
        message = channel.parse(whole, channel.TELLER_TYPES)
        self.heard.append(message)
        for answer in reply(message, self.rng):
            self.sent.append(answer)
            for part in channel.encode(answer):
                self.outgoing.send(part)
