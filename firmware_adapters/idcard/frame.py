"""SAM_V frames of the second-generation ID-card readers, as pure functions.

    AA AA AA 96 69 | Len1 Len2 | CMD PARA | data | CHK      (host -> reader)
    AA AA AA 96 69 | Len1 Len2 | SW1 SW2 SW3 | data | CHK   (reader -> host)

Len is big-endian and counts the bytes after it up to and including CHK; CHK is the XOR of
every byte after the preamble except itself. See docs/peripherals.md for the sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

from firmware_adapters.errors import FrameChecksum, FrameError, FrameOversized, FrameTruncated

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
HEADER_LEN = len(PREAMBLE) + 2
#: The largest known answer (text + photo + fingerprint, cmd 30 10) has Len 0x090A.
MAX_LEN = 0x0A00

#: name -> (CMD, PARA); values from the vendor protocol notes (docs/peripherals.md).
COMMANDS: dict[str, tuple[int, int]] = {
    "reset_sam": (0x10, 0xFF),
    "status": (0x11, 0xFF),
    "read_sam_id": (0x12, 0xFF),
    "find": (0x20, 0x01),
    "select": (0x20, 0x02),
    "read_base": (0x30, 0x01),
    "read_extra_address": (0x30, 0x03),
    "read_with_fingerprint": (0x30, 0x10),
}

#: SW3 reader status -> meaning.
STATUS: dict[int, str] = {
    0x90: "ok",
    0x9F: "card found",
    0x10: "checksum error",
    0x11: "length error",
    0x21: "command error",
    0x24: "unknown error",
    0x31: "card-to-reader authentication failed",
    0x32: "reader-to-card authentication failed",
    0x33: "information verification failed",
    0x40: "wrong card type",
    0x41: "read failed",
    0x47: "get random failed",
    0x60: "self-test failed",
    0x66: "reader not authorised",
    0x80: "find card failed",
    0x81: "select card failed",
}


def checksum(data: bytes) -> int:
    """XOR of all bytes."""
    return reduce(lambda a, b: a ^ b, data, 0)


def encode(body: bytes) -> bytes:
    """Wrap a body (CMD..data or SW..data) into a full frame."""
    length = len(body) + 1
    if length > MAX_LEN:
        raise FrameOversized(f"body of {len(body)} bytes exceeds the protocol limit")
    head = length.to_bytes(2, "big")
    return PREAMBLE + head + body + bytes([checksum(head + body)])


def decode(frame: bytes) -> bytes:
    """The body of one complete frame; FrameError subclasses on anything else."""
    if not frame.startswith(PREAMBLE):
        raise FrameError(f"no SAM_V preamble: {frame[:5].hex()}")
    if len(frame) < HEADER_LEN + 1:
        raise FrameTruncated(f"frame of {len(frame)} bytes is shorter than a header")
    length = int.from_bytes(frame[5:7], "big")
    if length > MAX_LEN or length < 1:
        raise FrameOversized(f"declared length {length} outside 1..{MAX_LEN}")
    if len(frame) < HEADER_LEN + length:
        raise FrameTruncated(f"declared {length} bytes, got {len(frame) - HEADER_LEN}")
    if len(frame) > HEADER_LEN + length:
        raise FrameError(f"{len(frame) - HEADER_LEN - length} bytes after the checksum")
    head_and_body, chk = frame[5:-1], frame[-1]
    if checksum(head_and_body) != chk:
        raise FrameChecksum(f"checksum {chk:02x}, computed {checksum(head_and_body):02x}")
    return frame[HEADER_LEN:-1]


@dataclass(frozen=True)
class Command:
    """A host-to-reader command."""

    cmd: int
    para: int
    data: bytes = b""

    @classmethod
    def named(cls, name: str, data: bytes = b"") -> Command:
        cmd, para = COMMANDS[name]
        return cls(cmd, para, data)

    @property
    def name(self) -> str:
        for name, code in COMMANDS.items():
            if code == (self.cmd, self.para):
                return name
        return f"unknown_{self.cmd:02x}{self.para:02x}"

    def to_bytes(self) -> bytes:
        return encode(bytes([self.cmd, self.para]) + self.data)

    @classmethod
    def parse(cls, frame: bytes) -> Command:
        body = decode(frame)
        if len(body) < 2:
            raise FrameTruncated("command frame without CMD and PARA")
        return cls(body[0], body[1], body[2:])


@dataclass(frozen=True)
class Response:
    """A reader-to-host answer; `sw3` is the reader status (see STATUS)."""

    sw1: int
    sw2: int
    sw3: int
    data: bytes = b""

    @property
    def status_text(self) -> str:
        return STATUS.get(self.sw3, f"status {self.sw3:02x}")

    def to_bytes(self) -> bytes:
        return encode(bytes([self.sw1, self.sw2, self.sw3]) + self.data)

    @classmethod
    def parse(cls, frame: bytes) -> Response:
        body = decode(frame)
        if len(body) < 3:
            raise FrameTruncated("answer frame without SW1 SW2 SW3")
        return cls(body[0], body[1], body[2], body[3:])


@dataclass(frozen=True)
class BaseInfo:
    """The payload of a read-base answer: 256 bytes of UCS-2 text and the encrypted photo."""

    text: bytes
    photo_wlt: bytes

    def __repr__(self) -> str:
        return f"BaseInfo(text=<{len(self.text)} bytes>, photo_wlt=<{len(self.photo_wlt)} bytes>)"

    def to_bytes(self) -> bytes:
        return (
            len(self.text).to_bytes(2, "big")
            + len(self.photo_wlt).to_bytes(2, "big")
            + self.text
            + self.photo_wlt
        )

    @classmethod
    def parse(cls, data: bytes) -> BaseInfo:
        if len(data) < 4:
            raise FrameTruncated("read-base data without its two length fields")
        text_len = int.from_bytes(data[0:2], "big")
        photo_len = int.from_bytes(data[2:4], "big")
        if len(data) != 4 + text_len + photo_len:
            raise FrameTruncated(
                f"read-base data of {len(data)} bytes, lengths say {4 + text_len + photo_len}"
            )
        return cls(data[4 : 4 + text_len], data[4 + text_len :])


class FrameDecoder:
    """Cuts a byte stream into SAM_V frames, skipping noise up to the next preamble.

    A frame with a bad checksum or an impossible length raises once and is dropped, so the
    next good frame still comes through.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a started frame (noise that may hold half a preamble does not count)."""
        return len(self._buf) if self._buf.startswith(PREAMBLE) else 0

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        frames: list[bytes] = []
        while True:
            start = self._buf.find(PREAMBLE)
            if start < 0:
                # keep a possible partial preamble at the end
                del self._buf[: max(0, len(self._buf) - (len(PREAMBLE) - 1))]
                return frames
            del self._buf[:start]
            if len(self._buf) < HEADER_LEN:
                return frames
            length = int.from_bytes(self._buf[5:7], "big")
            if length < 1 or length > MAX_LEN:
                if frames:  # hand over the good frames first; raise on the next feed
                    return frames
                del self._buf[: len(PREAMBLE)]
                raise FrameOversized(f"declared length {length} outside 1..{MAX_LEN}")
            if len(self._buf) < HEADER_LEN + length:
                return frames
            frame = bytes(self._buf[: HEADER_LEN + length])
            if checksum(frame[5:-1]) != frame[-1] and frames:
                return frames
            del self._buf[: HEADER_LEN + length]
            decode(frame)  # raises FrameChecksum; the bad frame is already dropped
            frames.append(frame)
