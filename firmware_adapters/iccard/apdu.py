"""Command and response APDUs for the PBOC / EMV read flow (ISO 7816-4, EMV Book 3)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_adapters.errors import FrameTruncated

PSE = b"1PAY.SYS.DDF01"  # contact payment system environment
PPSE = b"2PAY.SYS.DDF01"  # contactless (proximity) payment system environment


def select(name: bytes) -> bytes:
    """SELECT by DF name / AID: 00 A4 04 00 Lc name 00."""
    return bytes([0x00, 0xA4, 0x04, 0x00, len(name)]) + name + b"\x00"


def gpo(pdol_data: bytes) -> bytes:
    """GET PROCESSING OPTIONS: 80 A8 00 00 Lc 83 len data 00."""
    body = bytes([0x83, len(pdol_data)]) + pdol_data
    return bytes([0x80, 0xA8, 0x00, 0x00, len(body)]) + body + b"\x00"


def read_record(sfi: int, record: int) -> bytes:
    """READ RECORD: 00 B2 rec (SFI<<3)|4 00."""
    return bytes([0x00, 0xB2, record, (sfi << 3) | 0x04, 0x00])


def generate_ac(p1: int, cdol_data: bytes) -> bytes:
    """GENERATE APPLICATION CRYPTOGRAM: 80 AE P1 00 Lc data 00 (P1 80 = ARQC, 40 TC, 00 AAC)."""
    return bytes([0x80, 0xAE, p1, 0x00, len(cdol_data)]) + cdol_data + b"\x00"


ARQC = 0x80


def get_data(tag: int) -> bytes:
    """GET DATA for a two-byte tag (9F17 PIN tries left, 9F36 ATC): 80 CA t1 t2 00."""
    return bytes([0x80, 0xCA, tag >> 8, tag & 0xFF, 0x00])


def get_response(length: int) -> bytes:
    return bytes([0x00, 0xC0, 0x00, 0x00, length])


@dataclass(frozen=True)
class Response:
    """A response APDU: data and the status word."""

    data: bytes
    sw: int

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000

    @classmethod
    def parse(cls, raw: bytes) -> Response:
        if len(raw) < 2:
            raise FrameTruncated(f"response APDU of {len(raw)} bytes has no status word")
        return cls(raw[:-2], int.from_bytes(raw[-2:], "big"))

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")


#: status words the flow reacts to
SW: dict[int, str] = {
    0x9000: "ok",
    0x6A82: "file or application not found",
    0x6A83: "record not found",
    0x6985: "conditions of use not satisfied",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
    0x6700: "wrong length",
}
