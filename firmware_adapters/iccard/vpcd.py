"""Plugs an emulated card into pcscd's virtual reader (vsmartcard vpcd) over TCP.

vpcd listens on a port per slot (35963 by default, set in reader.conf). The card side
connects and then answers messages framed as a 2-byte big-endian length and a payload: one
byte 00 power off, 01 power on, 02 reset, 04 "send the ATR"; anything longer is a command
APDU to answer with a response APDU. Connecting is inserting the card; closing the socket is
pulling it out.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

from firmware_adapters.errors import DeviceAbsent
from firmware_adapters.iccard.card import ATR, PbocCard

VPCD_PORT = 0x8C7B  # 35963, the port in Debian's /etc/reader.conf.d/vpcd

POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4


class VirtualCardSlot:
    """One vpcd slot; `insert(card)` connects an emulated card, `remove()` pulls it."""

    def __init__(self, port: int = VPCD_PORT, host: str = "127.0.0.1") -> None:
        self.port = port
        self.host = host
        self.card: PbocCard | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._pull_after: int | None = None

    @property
    def inserted(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def insert(
        self, card: PbocCard | None = None, pull_after: int | None = None, wait: float = 10.0
    ) -> None:
        """Connect the card; with `pull_after`, vanish after answering that many APDUs."""
        self.remove()
        self.card = card or PbocCard()
        self._pull_after = pull_after
        deadline = time.monotonic() + wait
        while True:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=1)
                break
            except OSError as err:
                if time.monotonic() > deadline:
                    raise DeviceAbsent(f"vpcd not listening on port {self.port}") from err
                time.sleep(0.05)
        self._sock.settimeout(None)
        # one small message per APDU: without this Nagle holds each answer ~40 ms
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._thread = threading.Thread(target=self._serve, name="vpcd-card", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _serve(self) -> None:
        sock, card = self._sock, self.card
        assert sock is not None and card is not None
        answered = 0
        try:
            while True:
                (length,) = struct.unpack("!H", _recv_exact(sock, 2))
                msg = _recv_exact(sock, length)
                if length == 1:
                    if msg[0] in (POWER_ON, RESET):
                        card.reset()
                    elif msg[0] == GET_ATR:
                        sock.sendall(struct.pack("!H", len(ATR)) + ATR)
                    continue
                if self._pull_after is not None and answered >= self._pull_after:
                    sock.close()  # pulled out mid-transaction: the APDU stays unanswered
                    return
                reply = card.respond(msg)
                answered += 1
                sock.sendall(struct.pack("!H", len(reply)) + reply)
        except (OSError, ConnectionError):
            return


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        # vpcd writes the length and the APDU separately; acking at once keeps its second
        # write from waiting out our delayed ACK (~40 ms per APDU). Linux resets the flag.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("vpcd closed the connection")
        buf += chunk
    return buf
