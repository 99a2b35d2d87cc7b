"""A PBOC 3.0 debit card written by the project, answering APDUs as a pure state machine.

It holds a contact PSE with one directory record, a PPSE, one or more applications (UnionPay
debit by default) with a PDOL, a format-2 GPO answer and records carrying track 2, the
cardholder name, PAN, expiry and PAN sequence number. Test data only.

On GENERATE AC (after GPO) it answers a real ARQC: its AC master key is derived at
personalisation from the profile's issuer master key (`cryptogram.card_master_key`, Option A),
each GENERATE AC increments the ATC and MACs the CDOL1 data with that ATC's session key, so a
verifier holding the IMK can check it and a forged or replayed cryptogram fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_adapters.iccard import apdu, cryptogram, tlv
from firmware_adapters.iccard.emv import parse_dol
from firmware_adapters.iccard.tlv import build

#: T=1 ATR: TS 3B, T0 81, TD1 80, TD2 01, one historical byte 80, TCK 80
ATR = bytes.fromhex("3B8180018080")
PDOL = bytes.fromhex("9F66049F02069F37045F2A02")
#: the data the card MACs on GENERATE AC: amount, other amount, country, TVR, currency, date,
#: type, unpredictable number (the usual PBOC / EMV CDOL1 head, 29 bytes)
CDOL1 = bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F3704")
AIP = b"\x7c\x00"
#: issuer application data: length, derivation key index, cryptogram version, CVR (4 bytes)
IAD = bytes.fromhex("07010103A00000")
#: A test issuer master key (IMK-AC); a real card never carries its issuer's key
TEST_IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")


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
    imk: bytes = field(default=TEST_IMK, repr=False)  # personalisation derives the card key
    #: The card's own AC master key, when personalised from it (a card file keeps this,
    #: never the issuer's key); None: derived from ``imk``.
    ac_key: bytes | None = field(default=None, repr=False)
    atc: int = 0x29  # the last ATC used; the next GENERATE AC uses atc + 1

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
        self.atc = self.profile.atc
        self._ac_key = self.profile.ac_key or cryptogram.card_master_key(
            self.profile.imk, self.profile.pan, self.profile.pan_sequence
        )
        self._gpo_done = False
        self.directory = build(0x70, self._directory_entries()).to_bytes()

    def reset(self) -> None:
        self.selected = None
        self._gpo_done = False

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
        if (cla, ins) == (0x80, 0xAE):
            return self._generate_ac(p1, c[5 : 5 + c[4]] if len(c) > 5 else b"")
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
            values = {0x9F17: b"\x03", 0x9F36: self.atc.to_bytes(2, "big")}
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
        answer = build(0x77, [build(0x82, AIP), build(0x94, afl)])
        self._gpo_done = True
        return apdu.Response(answer.to_bytes(), 0x9000)

    def _generate_ac(self, p1: int, data: bytes) -> apdu.Response:
        """ARQC over the CDOL1 data (an offline-declining card: TC requests get an ARQC too)."""
        if not self._gpo_done:
            return apdu.Response(b"", 0x6985)
        if len(data) != sum(length for _, length in parse_dol(CDOL1)):
            return apdu.Response(b"", 0x6700)
        if self.atc >= 0xFFFF:
            return apdu.Response(b"", 0x6985)  # ATC exhausted: the card is dead
        self.atc += 1
        self._gpo_done = False  # one cryptogram per transaction
        cid = 0x00 if p1 & 0xC0 == 0x00 else 0x80  # AAC asked -> AAC, otherwise ARQC
        ac = cryptogram.arqc(self._ac_key, self.atc, data, AIP, IAD[3:7])
        answer = build(
            0x77,
            [
                build(0x9F27, bytes([cid])),
                build(0x9F36, self.atc.to_bytes(2, "big")),
                build(0x9F26, ac),
                build(0x9F10, IAD),
            ],
        )
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
                0x70,
                [build(0x9F08, b"\x00\x30"), build(0x5F28, b"\x01\x56"), build(0x8C, CDOL1)],
            ).to_bytes(),
        }
