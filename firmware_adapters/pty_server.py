"""Serves a simulated serial device on a pseudo-terminal, paced at a chosen baud rate.

The simulator logic is a pure `Responder` (frames in, bytes out, time as an argument); this
module is the only I/O: it opens a pty, links its slave path to a stable name such as
`/tmp/idcard.tty`, and runs a loop in a thread (tests) or in the foreground (demo process).
Output is paced at 10 bits per byte so latencies look like the wire's.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
import tty
from pathlib import Path
from typing import Protocol

from firmware_adapters.errors import FrameError
from firmware_adapters.serial_link import Decoder

CHUNK = 64


class Responder(Protocol):
    """A simulated device: answers frames now, and may speak by itself later (key presses)."""

    def new_decoder(self) -> Decoder: ...
    def handle(self, frame: bytes, now: float) -> list[bytes]: ...
    def handle_error(self, err: FrameError) -> list[bytes]: ...
    def tick(self, now: float) -> list[bytes]: ...
    def next_deadline(self) -> float | None: ...


class PtyServer:
    """One simulated device on one pty; `start()` / `stop()` or `with PtyServer(...)`."""

    def __init__(self, responder: Responder, link: Path, baudrate: int = 115200) -> None:
        self.responder = responder
        self.link = Path(link)
        self.baudrate = baudrate
        self._master = -1
        self._slave = -1
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the responder is shared with the test thread

    def __enter__(self) -> PtyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> PtyServer:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.link.unlink(missing_ok=True)
        self.link.symlink_to(os.ttyname(self._slave))
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self.serve, name=f"pty:{self.link}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the pty: to the host this looks like the device being unplugged."""
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(5)
            self._thread = None
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = self._stop_r = self._stop_w = -1

    @property
    def lock(self) -> threading.Lock:
        """Hold this while changing the responder (cards, faults) from another thread."""
        return self._lock

    def serve(self) -> None:
        """The loop: read host bytes, answer frames, emit timed output, until stopped."""
        decoder = self.responder.new_decoder()
        while True:
            deadline = self.responder.next_deadline()
            # at most 0.5 s: the test thread may change the responder meanwhile (keys pressed)
            wait = 0.5 if deadline is None else min(0.5, max(0.0, deadline - time.monotonic()))
            ready, _, _ = select.select([self._master, self._stop_r], [], [], wait)
            if self._stop_r in ready:
                return
            out: list[bytes] = []
            with self._lock:
                if self._master in ready:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        return
                    try:
                        for frame in decoder.feed(data):
                            out += self.responder.handle(frame, time.monotonic())
                    except FrameError as err:
                        out += self.responder.handle_error(err)
                out += self.responder.tick(time.monotonic())
            for chunk in out:
                self._send(chunk)

    def _send(self, data: bytes) -> None:
        for i in range(0, len(data), CHUNK):
            piece = data[i : i + CHUNK]
            time.sleep(len(piece) * 10 / self.baudrate)  # the bytes arrive after wire time
            os.write(self._master, piece)


def serve_until_signalled(responder: Responder, link: Path, baudrate: int, label: str) -> None:
    """Run a simulator in the foreground until SIGINT / SIGTERM (the demo processes)."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with PtyServer(responder, link, baudrate):
        print(f"{label} simulator on {link} at {baudrate} baud", flush=True)
        done.wait()
