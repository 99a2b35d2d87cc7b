"""PIN-pad frames in the ZT588 style, as pure functions.

    STX(02) | LEN (3 ASCII decimal digits) | TEXT (ASCII) | ETX(03) | CHK (2 ASCII hex)

LEN counts TEXT; CHK is the XOR of the bytes from LEN through ETX, written as two upper-case
hex digits. The first character of TEXT names the command (host -> pad) or the message kind
(pad -> host): a two-character status answer ("00", "E1", ...), a key event ("K*") or the end
of PIN entry ("F00", "FEE", "FEC"). See docs/peripherals.md.
"""

from __future__ import annotations

from functools import reduce

from firmware_adapters.errors import FrameChecksum, FrameError, FrameOversized, FrameTruncated

STX, ETX = 0x02, 0x03
MAX_TEXT = 999
OVERHEAD = 1 + 3 + 1 + 2

#: command code -> meaning (host -> pad)
COMMANDS: dict[str, str] = {
    "1": "load master key in plain text: 1 <slot> <alg> <key hex>",
    "2": "load working key under a master key: 2 <master> <slot> <key hex>[:<KCV hex>]",
    "3": "device information",
    "5": "cancel PIN entry",
    "6": "start PIN entry: 6 <slot> <format> <min 2> <max 2> <timeout 3> <PAN>",
    "7": "read the encrypted PIN block",
    "8": "load a master key component: 8 <slot> <alg> <part 1|2> <component hex>:<KCV hex>",
}

#: status answers (pad -> host)
STATUS: dict[str, str] = {
    "00": "ok",
    "E0": "command unknown",
    "E1": "master key required",
    "E2": "working key required",
    "E3": "parameter error",
    "E4": "no PIN entered",
    "E6": "key check failed",
    "E7": "busy: PIN entry running",
    "EE": "PIN entry timed out",
}


def _xor(data: bytes) -> int:
    return reduce(lambda a, b: a ^ b, data, 0)


def encode(text: str) -> bytes:
    """One frame around an ASCII text."""
    body = text.encode("ascii")
    if len(body) > MAX_TEXT:
        raise FrameOversized(f"text of {len(body)} bytes exceeds {MAX_TEXT}")
    covered = f"{len(body):03d}".encode() + body + bytes([ETX])
    return bytes([STX]) + covered + f"{_xor(covered):02X}".encode()


def decode(frame: bytes) -> str:
    """The text of one complete frame; FrameError subclasses on anything else."""
    if not frame or frame[0] != STX:
        raise FrameError("frame does not start with STX")
    if len(frame) < OVERHEAD:
        raise FrameTruncated(f"frame of {len(frame)} bytes is shorter than its overhead")
    length = _length(frame[1:4])
    if len(frame) < OVERHEAD + length:
        raise FrameTruncated(f"declared {length} bytes of text, got {len(frame) - OVERHEAD}")
    if len(frame) > OVERHEAD + length:
        raise FrameError("bytes after the checksum")
    if frame[4 + length] != ETX:
        raise FrameError("ETX missing where the length says")
    covered, chk = frame[1 : 5 + length], frame[5 + length :]
    if chk != f"{_xor(covered):02X}".encode():
        raise FrameChecksum(f"checksum {chk!r}, computed {_xor(covered):02X}")
    try:
        return frame[4 : 4 + length].decode("ascii")
    except UnicodeDecodeError as err:
        raise FrameError("text is not ASCII") from err


def _length(digits: bytes) -> int:
    if len(digits) != 3 or not digits.isdigit():
        raise FrameError(f"length field {digits!r} is not three decimal digits")
    return int(digits)


class FrameDecoder:
    """Cuts a byte stream into frames; noise before STX is skipped, bad frames raise once."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf) if self._buf[:1] == bytes([STX]) else 0

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        frames: list[bytes] = []
        while True:
            start = self._buf.find(STX)
            if start < 0:
                self._buf.clear()
                return frames
            del self._buf[:start]
            if len(self._buf) < 4:
                return frames
            try:
                length = _length(bytes(self._buf[1:4]))
            except FrameError:
                if frames:
                    return frames
                del self._buf[:1]
                raise
            if len(self._buf) < OVERHEAD + length:
                return frames
            frame = bytes(self._buf[: OVERHEAD + length])
            try:
                decode(frame)
            except FrameError:
                if frames:
                    return frames
                del self._buf[: OVERHEAD + length]
                raise
            del self._buf[: OVERHEAD + length]
            frames.append(frame)
