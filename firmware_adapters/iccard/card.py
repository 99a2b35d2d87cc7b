"""A PBOC 3.0 debit card written by the project, answering APDUs as a pure state machine.

It holds a contact PSE with one directory record, a PPSE, one or more applications (UnionPay
debit by default) with a PDOL, a format-2 GPO answer and records carrying track 2, the
cardholder name, PAN, expiry and PAN sequence number. Test data only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_adapters.iccard import apdu, tlv
from firmware_adapters.iccard.emv import parse_dol
from firmware_adapters.iccard.tlv import build

#: T=1 ATR: TS 3B, T0 81, TD1 80, TD2 01, one historical byte 80, TCK 80
ATR = bytes.fromhex("3B8180018080")
PDOL = bytes.fromhex("9F66049F02069F37045F2A02")


@dataclass
class CardProfile:
    """What the emulated card carries."""

    pan: str = "6217002870012345672"
    expiry: str = "301231"  # YYMMDD
    effective: str = "201201"
    name: str = "ZHANG/SANFENG"
    pan_sequence: int = 1
    aids: list[str] = field(default_factory=lambda: ["A000000333010101"])
    pse: bool = True
    ppse: bool = True

    def __repr__(self) -> str:
        return f"CardProfile(pan={self.pan[:4]}…{self.pan[-4:]}, aids={self.aids})"


def _bcd(digits: str, size: int | None = None) -> bytes:
    text = digits + ("F" if len(digits) % 2 else "")
    raw = bytes.fromhex(text)
    return raw if size is None else raw.ljust(size, b"\xff")


class PbocCard:
    """Answers C-APDUs the way a PBOC debit card would for a read-only flow."""

    def __init__(self, profile: CardProfile | None = None) -> None:
        self.profile = profile or CardProfile()
        self.selected: bytes | None = None
        self.apdus = 0
        self.records = self._records()
        self.directory = build(0x70, self._directory_entries()).to_bytes()

    def reset(self) -> None:
        self.selected = None

    def respond(self, command: bytes) -> bytes:
        self.apdus += 1
        return self._respond(command).to_bytes()

    def _respond(self, c: bytes) -> apdu.Response:
        if len(c) < 4:
            return apdu.Response(b"", 0x6700)
        cla, ins, p1, p2 = c[:4]
        if (cla, ins, p1) == (0x00, 0xA4, 0x04):
            return self._select(c[5 : 5 + c[4]] if len(c) > 5 else b"")
        if (cla, ins) == (0x80, 0xA8):
            return self._gpo(c[5 : 5 + c[4]] if len(c) > 5 else b"")
        if (cla, ins) == (0x00, 0xB2):
            sfi = p2 >> 3
            if self.selected == apdu.PSE:
                rec = self.directory if (sfi, p1) == (1, 1) else None
            elif self.selected not in (None, apdu.PPSE):
                rec = self.records.get((sfi, p1))
            else:
                rec = None
            return apdu.Response(rec, 0x9000) if rec else apdu.Response(b"", 0x6A83)
        if (cla, ins) == (0x80, 0xCA):
            tag = (p1 << 8) | p2
            values = {0x9F17: b"\x03", 0x9F36: b"\x00\x2a"}
            if tag in values:
                return apdu.Response(build(tag, values[tag]).to_bytes(), 0x9000)
            return apdu.Response(b"", 0x6A88)
        return apdu.Response(b"", 0x6D00)

    def _directory_entries(self) -> list[tlv.Tlv]:
        return [
            build(0x61, [build(0x4F, bytes.fromhex(aid)), build(0x50, b"UnionPay Debit"),
                         build(0x87, bytes([i + 1]))])
            for i, aid in enumerate(self.profile.aids)
        ]  # fmt: skip

    def _select(self, name: bytes) -> apdu.Response:
        p = self.profile
        if name == apdu.PSE and p.pse:
            prop = build(0xA5, [build(0x88, b"\x01"), build(0x5F2D, b"zhen")])
            fci = build(0x6F, [build(0x84, name), prop])
        elif name == apdu.PPSE and p.ppse:
            prop = build(0xA5, [build(0xBF0C, self._directory_entries())])
            fci = build(0x6F, [build(0x84, name), prop])
        elif name.hex().upper() in p.aids:
            prop = build(
                0xA5,
                [build(0x50, b"UnionPay Debit"), build(0x87, b"\x01"), build(0x9F38, PDOL)],
            )
            fci = build(0x6F, [build(0x84, name), prop])
        else:
            return apdu.Response(b"", 0x6A82)
        self.selected = name
        return apdu.Response(fci.to_bytes(), 0x9000)

    def _gpo(self, body: bytes) -> apdu.Response:
        if self.selected is None or self.selected.hex().upper() not in self.profile.aids:
            return apdu.Response(b"", 0x6985)
        expected = sum(length for _, length in parse_dol(PDOL))
        if body[:1] != b"\x83" or len(body) != 2 + expected or body[1] != expected:
            return apdu.Response(b"", 0x6700)
        afl = bytes.fromhex("0801020010010100")  # SFI 1 records 1-2, SFI 2 record 1
        answer = build(0x77, [build(0x82, b"\x7c\x00"), build(0x94, afl)])
        return apdu.Response(answer.to_bytes(), 0x9000)

    def _records(self) -> dict[tuple[int, int], bytes]:
        p = self.profile
        track2 = _bcd(f"{p.pan}D{p.expiry[:4]}2010000012345")
        return {
            (1, 1): build(0x70, [build(0x57, track2), build(0x5F20, p.name.encode())]).to_bytes(),
            (1, 2): build(
                0x70,
                [
                    build(0x5A, _bcd(p.pan)),
                    build(0x5F24, bytes.fromhex(p.expiry)),
                    build(0x5F25, bytes.fromhex(p.effective)),
                    build(0x5F34, bytes([p.pan_sequence])),
                ],
            ).to_bytes(),
            (2, 1): build(
                0x70, [build(0x9F08, b"\x00\x30"), build(0x5F28, b"\x01\x56")]
            ).to_bytes(),
        }
