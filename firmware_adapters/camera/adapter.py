"""Async camera adapter: a V4L2 device through PyAV, or the synthetic source.

    async with Camera("camera", device="/dev/video0") as cam:     # or device="synthetic"
        async for frame in cam.frames(limit=30):
            ...  # frame.pixels is RGB, frame.timestamp is aware UTC

A missing or unusable device raises DeviceAbsent (health "absent"); a capture that stops
delivering raises DeviceTimeout. Frames go to the liveness pipeline and the video session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from firmware_adapters.base import AdapterBase, SelfTestResult
from firmware_adapters.camera.synthetic import Pixels, synthetic_frame
from firmware_adapters.errors import DeviceAbsent, DeviceTimeout, PeripheralError

SYNTHETIC = "synthetic"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Frame:
    index: int
    timestamp: dt.datetime
    pixels: Pixels = field(repr=False)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


class Camera(AdapterBase):
    """One camera; `device` is a V4L2 path or "synthetic"."""

    kind = "camera"

    def __init__(
        self,
        name: str,
        device: str = SYNTHETIC,
        width: int = 640,
        height: int = 480,
        fps: int = 15,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        super().__init__(name)
        self.device = device
        self.width, self.height, self.fps = width, height, fps
        self.clock = clock
        self._container: Any = None
        self._decoded: Iterator[Any] | None = None
        self._index = 0
        self._opened = False

    async def open(self) -> None:
        async with self.operation():
            if self.device != SYNTHETIC and self._container is None:
                self._container = await asyncio.to_thread(self._open_v4l2)
                self._decoded = self._container.decode(video=0)
            self._opened = True

    async def close(self) -> None:
        container, self._container, self._decoded = self._container, None, None
        self._opened = False
        if container is not None:
            await asyncio.to_thread(container.close)

    async def self_test(self) -> SelfTestResult:
        start = time.perf_counter()
        try:
            frame = await self.read_frame()
        except PeripheralError as err:
            return self.result(False, f"{type(err).__name__}: {err}", start)
        return self.result(True, f"{self.device}: frame {frame.size[0]}x{frame.size[1]}", start)

    async def read_frame(self) -> Frame:
        """The next frame (opening the device first if needed)."""
        if not self._opened:
            await self.open()
        async with self.operation():
            if self.device == SYNTHETIC:
                pixels = synthetic_frame(self._index, self.clock(), self.width, self.height)
            else:
                pixels = await asyncio.to_thread(self._next_v4l2)
            frame = Frame(self._index, self.clock(), pixels)
            self._index += 1
            return frame

    async def frames(self, limit: int | None = None) -> AsyncIterator[Frame]:
        """Frames paced at `fps` (a real device paces itself; the synthetic source sleeps)."""
        period = 1.0 / self.fps
        next_due = time.monotonic()
        count = 0
        while limit is None or count < limit:
            if self.device == SYNTHETIC:
                await asyncio.sleep(max(0.0, next_due - time.monotonic()))
                next_due += period
            yield await self.read_frame()
            count += 1

    def _open_v4l2(self) -> Any:
        import av

        try:
            return av.open(
                self.device,
                format="v4l2",
                options={
                    "video_size": f"{self.width}x{self.height}",
                    "framerate": str(self.fps),
                },
                timeout=5.0,
            )
        except (OSError, av.FFmpegError, ValueError) as err:
            raise DeviceAbsent(f"cannot open camera {self.device}: {err}") from err

    def _next_v4l2(self) -> Pixels:
        import av

        assert self._decoded is not None
        try:
            frame = next(self._decoded)
        except StopIteration as err:
            raise DeviceTimeout(f"camera {self.device} stopped delivering frames") from err
        except (OSError, av.FFmpegError) as err:
            self._container, self._decoded, self._opened = None, None, False
            raise DeviceAbsent(f"camera {self.device}: {err}") from err
        return frame.to_ndarray(format="rgb24")  # type: ignore[no-any-return]
