"""In-memory stand-ins for the terminal tests that need no Janus."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from av import VideoFrame

from common.wire import call as wire
from common.wire import datachannel as channel
from edge.teller.peer import Incoming
from firmware_adapters.camera.synthetic import synthetic_frame


class FakeRoom:
    """Stands in for ``peer.RoomPeer``: up at once, a teller frame, records what is sent."""

    def __init__(
        self, grant: wire.Grant, on_text: Callable[[str], None], on_event: Callable[..., Any]
    ) -> None:
        self.grant, self.on_text, self.on_event = grant, on_text, on_event
        self.publications = 0
        self.sent: list[dict[str, Any]] = []
        self.followed: list[str] = []
        self.incoming = Incoming()

    async def start(self) -> None:
        pixels = synthetic_frame(1, dt.datetime.now(dt.UTC), 480, 360)
        self.incoming.frame = VideoFrame.from_ndarray(pixels, format="rgb24")
        self.publications += 1
        self.on_event("up")

    async def republish(self) -> None:
        await self.start()

    async def follow(self, peer_feed: str) -> None:
        self.followed.append(peer_feed)

    async def close(self) -> None:
        pass

    def send(self, text: str) -> bool:
        self.sent.append(channel.parse(text, channel.TERMINAL_TYPES))
        return True
