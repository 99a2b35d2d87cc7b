"""Pre-encoded media through aiortc: packets go out without an encoder, arrive decodable and
in order, a keyframe request restarts the clip at a keyframe, and counting receivers see
the same frames without decoding them. Two aiortc peers on loopback, no Janus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import VideoFrame

from tests.callbench import barcode, media
from tests.callbench.media import HEIGHT, Assembled, Clip


@pytest.fixture(scope="module")
def clip() -> Clip:
    return media.encode_clip(seconds=2.0, gop_seconds=1.0)


@pytest.fixture
def counting() -> Iterator[None]:
    media.count_instead_of_decoding()
    try:
        yield
    finally:
        media.real_decoders()


async def connected(clip: Clip) -> tuple[RTCPeerConnection, RTCPeerConnection, list[object]]:
    sender, receiver = RTCPeerConnection(), RTCPeerConnection()
    media.add_clip(sender, clip)
    got: list[object] = []
    pulls: list[asyncio.Task[None]] = []

    def on_track(track: MediaStreamTrack) -> None:
        async def pull() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    got.append(await track.recv())

        if track.kind == "video":
            pulls.append(asyncio.ensure_future(pull()))

    receiver.on("track", on_track)
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    return sender, receiver, got


async def wait_for(got: list[object], n: int) -> None:
    for _ in range(200):
        if len(got) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(got)} of {n} frames arrived")


async def test_clip_arrives_in_order_and_restarts_on_keyframe_request(clip: Clip) -> None:
    sender, receiver, got = await connected(clip)
    try:
        await wait_for(got, 20)
        frames = [f for f in got if isinstance(f, VideoFrame)]
        assert frames and all((f.width, f.height) == (640, 360) for f in frames)
        numbers = [barcode.read(f.to_ndarray(format="yuv420p")[:HEIGHT]) for f in frames]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))

        video_sender = next(s for s in sender.getSenders() if s.track.kind == "video")
        await wait_for(got, len(got) + 5)
        video_sender._send_keyframe()  # what aiortc does on a PLI from Janus
        mark = len(got)
        await wait_for(got, mark + 10)
        after = [barcode.read(f.to_ndarray(format="yuv420p")[:HEIGHT]) for f in got[mark:]]
        assert 0 in after and after[after.index(0) :][:5] == [0, 1, 2, 3, 4]
    finally:
        await sender.close()
        await receiver.close()


async def test_counting_receivers_see_frames_without_decoding(clip: Clip, counting: None) -> None:
    sender, receiver, got = await connected(clip)
    try:
        await wait_for(got, 40)
        assert all(isinstance(f, Assembled) and f.kind == "video" for f in got)
        sizes = {len(data) for data in clip.frames}
        assert {f.size for f in got} <= sizes  # whole encoded frames, reassembled
        assert got[0].keyframe  # type: ignore[attr-defined]
        keys = sum(f.keyframe for f in got)  # type: ignore[attr-defined]
        assert 1 <= keys <= 3  # one a second in this clip, plus the start
    finally:
        await sender.close()
        await receiver.close()
