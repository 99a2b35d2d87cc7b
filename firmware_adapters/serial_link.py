"""Async door to a blocking serial port, shared by the serial peripherals.

pyserial is blocking, so every call goes through `asyncio.to_thread`. The port object is
injected through `opener` (tests may pass an in-memory pair); pyserial exceptions and OS
errors become `DeviceAbsent`, silence becomes `DeviceTimeout` and half a frame becomes
`FrameTruncated`. After a failure the port is dropped and reopened on the next call, so an
unplugged and replugged device recovers without restarting anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import termios
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import serial

from firmware_adapters.base import AdapterBase
from firmware_adapters.errors import DeviceAbsent, DeviceTimeout, FrameTruncated

R = TypeVar("R")


#: what a vanished port raises: pyserial's own error, or termios' for a closed pty
LINK_ERRORS: tuple[type[Exception], ...] = (OSError, serial.SerialException, termios.error)


class Port(Protocol):
    """The part of `serial.Serial` the link uses."""

    timeout: float | None

    def write(self, data: bytes, /) -> int | None: ...
    def read(self, size: int = 1, /) -> bytes: ...
    @property
    def in_waiting(self) -> int: ...
    def reset_input_buffer(self) -> None: ...
    def close(self) -> None: ...


class Decoder(Protocol):
    """Reassembles frames from a byte stream (see each protocol's `frame.py`)."""

    def feed(self, chunk: bytes) -> list[bytes]: ...
    @property
    def pending(self) -> int: ...


def open_serial(url: str, baudrate: int) -> Port:
    """Open a real port (or any pyserial URL such as `loop://`)."""
    try:
        port: Port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.1, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as err:
        raise DeviceAbsent(f"cannot open {url}: {err}") from err
    return port


class SerialLink:
    """One serial device: open lazily, exchange frames, reopen after errors."""

    def __init__(
        self, url: str, baudrate: int, opener: Callable[[str, int], Port] = open_serial
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self._opener = opener
        self._port: Port | None = None
        # frames that arrived in the same chunk as the one read_frame returned, per decoder
        # (a PIN pad's key events and its end-of-entry often come in one read)
        self._backlog: dict[int, list[bytes]] = {}

    @property
    def is_open(self) -> bool:
        return self._port is not None

    async def open(self) -> None:
        if self._port is None:
            self._port = await asyncio.to_thread(self._opener, self.url, self.baudrate)

    async def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            await asyncio.to_thread(_close_quietly, port)

    async def write(self, data: bytes) -> None:
        await self.open()
        await self._guarded(_write, data)

    async def read_some(self, within: float) -> bytes:
        """Whatever bytes arrive within `within` seconds (empty on silence)."""
        await self.open()
        return await self._guarded(_read_some, within)

    async def read_frame(self, decoder: Decoder, within: float) -> bytes:
        """The next complete frame from the decoder, within `within` seconds."""
        if backlog := self._backlog.get(id(decoder)):
            return backlog.pop(0)
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if decoder.pending:
                    raise FrameTruncated(
                        f"{self.url}: frame cut short ({decoder.pending} bytes then silence)"
                    )
                raise DeviceTimeout(f"{self.url}: no answer within {within:.1f}s")
            chunk = await self.read_some(min(remaining, 0.2))
            frames = decoder.feed(chunk) if chunk else []
            if frames:
                self._backlog[id(decoder)] = frames[1:]
                return frames[0]

    async def exchange(self, request: bytes, decoder: Decoder, within: float) -> bytes:
        """Send one request frame and return the first complete answer frame."""
        await self.open()
        self._backlog.clear()  # a new exchange starts clean, as the flushed input does
        await self._guarded(_flush_input)
        await self.write(request)
        return await self.read_frame(decoder, within)

    async def _guarded(self, fn: Callable[..., R], *args: object) -> R:
        port = self._port
        assert port is not None
        try:
            return await asyncio.to_thread(fn, port, *args)
        except LINK_ERRORS as err:
            await self.close()
            raise DeviceAbsent(f"{self.url}: {err}") from err


def _write(port: Port, data: bytes) -> None:
    port.write(data)


def _flush_input(port: Port) -> None:
    port.reset_input_buffer()


def _read_some(port: Port, timeout: float) -> bytes:
    port.timeout = timeout
    first = port.read(1)
    if not first:
        return b""
    return first + port.read(port.in_waiting) if port.in_waiting else first


def _close_quietly(port: Port) -> None:
    with contextlib.suppress(Exception):  # closing a dead port must not mask the real error
        port.close()


class SerialAdapter(AdapterBase):
    """An adapter whose device sits on one serial port (ID-card reader, PIN pad)."""

    default_baudrate = 9600

    def __init__(
        self,
        name: str,
        port: str,
        baudrate: int | None = None,
        timeout: float = 1.5,
        opener: Callable[[str, int], Port] = open_serial,
    ) -> None:
        super().__init__(name)
        self.link = SerialLink(port, baudrate or self.default_baudrate, opener)
        self.timeout = timeout

    async def open(self) -> None:
        async with self.operation():
            await self.link.open()

    async def close(self) -> None:
        await self.link.close()
