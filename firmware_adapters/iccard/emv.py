"""The PBOC / EMV application-selection and read logic as pure functions over TLVs.

Flow (EMV Book 1 §12, Book 3 §10): SELECT PSE (contact) or PPSE (contactless) -> list of
applications -> choose one -> SELECT AID -> GPO with the PDOL filled -> AFL -> READ RECORD
for every listed record -> PAN (5A or track 2), expiry (5F24), name (5F20), PAN sequence (5F34).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from firmware_adapters.errors import FieldInvalid, FrameError
from firmware_adapters.iccard import tlv
from firmware_adapters.masking import mask_pan

#: AID (hex) -> (scheme, product), in order of preference for this bank's business
AIDS: dict[str, tuple[str, str]] = {
    "A000000333010101": ("UnionPay", "debit"),
    "A000000333010102": ("UnionPay", "credit"),
    "A000000333010103": ("UnionPay", "quasi-credit"),
    "A000000333010106": ("UnionPay", "e-cash"),
    "A0000000031010": ("Visa", "credit/debit"),
    "A0000000041010": ("Mastercard", "credit/debit"),
    "A0000000651010": ("JCB", "credit/debit"),
    "A00000002501": ("American Express", "credit"),
}

#: PDOL tags the terminal fills with fixed values (tag -> value); others get zeros
TERMINAL_DATA: dict[int, bytes] = {
    0x9F66: bytes.fromhex("26000080"),  # TTQ: contact EMV + qPBOC, online capable
    0x9F02: bytes(6),  # amount authorised: 0 (a read, not a payment)
    0x9F03: bytes(6),  # other amount
    0x9F1A: bytes.fromhex("0156"),  # terminal country: China
    0x5F2A: bytes.fromhex("0156"),  # transaction currency: CNY
    0x9C: b"\x31",  # transaction type: balance inquiry
    0x95: bytes(5),  # TVR
}


@dataclass(frozen=True)
class Application:
    aid: bytes
    label: str = ""
    priority: int | None = None

    @property
    def scheme(self) -> tuple[str, str]:
        return AIDS.get(self.aid.hex().upper(), ("unknown", "unknown"))


@dataclass(frozen=True)
class AflEntry:
    sfi: int
    first: int
    last: int
    offline_auth_records: int


@dataclass(frozen=True)
class CardData:
    """What the business needs from the card; the PAN is masked in repr and logs."""

    aid: str
    label: str
    scheme: str
    product: str
    pan: str = field(repr=False)
    pan_sequence: int | None
    expiry: dt.date
    cardholder_name: str | None = field(repr=False)

    @property
    def pan_masked(self) -> str:
        return mask_pan(self.pan)

    def __repr__(self) -> str:
        return (
            f"CardData(pan={self.pan_masked}, scheme={self.scheme}, product={self.product}, "
            f"expiry={self.expiry:%Y-%m})"
        )


def applications_from_fci(fci: list[tlv.Tlv]) -> list[Application]:
    """Applications listed in a PPSE answer (BF0C / 61 entries)."""
    return [_application(entry) for entry in tlv.find_all(fci, 0x61)]


def applications_from_records(records: list[list[tlv.Tlv]]) -> list[Application]:
    """Applications listed in PSE directory records (70 / 61 entries)."""
    return [_application(entry) for rec in records for entry in tlv.find_all(rec, 0x61)]


def _application(entry: tlv.Tlv) -> Application:
    aid = tlv.find([entry], 0x4F)
    if aid is None:
        raise FieldInvalid("directory entry without an AID (4F)")
    label = tlv.find([entry], 0x50) or b""
    priority = tlv.find([entry], 0x87)
    rank = priority[0] & 0x0F if priority else None
    return Application(aid, label.decode("ascii", "replace"), rank)


def choose_application(apps: list[Application]) -> Application:
    """The preferred known application (UnionPay debit first), then by card priority."""
    order = list(AIDS)
    known = [a for a in apps if a.aid.hex().upper() in AIDS]
    if not known:
        raise FieldInvalid("no supported payment application on the card")
    return min(known, key=lambda a: (order.index(a.aid.hex().upper()), a.priority or 15))


def pse_sfi(fci: list[tlv.Tlv]) -> int:
    sfi = tlv.find(fci, 0x88)
    if not sfi:
        raise FieldInvalid("PSE answer without an SFI (88)")
    return sfi[0]


def parse_dol(dol: bytes) -> list[tuple[int, int]]:
    """A data object list: (tag, length) pairs with no values."""
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < len(dol):
        tag, pos = tlv.read_tag(dol, pos)
        if pos >= len(dol):
            raise FrameError("DOL entry without a length")
        out.append((tag, dol[pos]))
        pos += 1
    return out


def pdol_data(dol: list[tuple[int, int]], now: dt.datetime, unpredictable: bytes) -> bytes:
    """The values the PDOL asks for, each cut or zero-padded to its requested length."""
    values = dict(TERMINAL_DATA)
    values[0x9A] = bytes.fromhex(now.strftime("%y%m%d"))
    values[0x9F21] = bytes.fromhex(now.strftime("%H%M%S"))
    values[0x9F37] = unpredictable
    return dol_data(dol, values)


@dataclass(frozen=True)
class Transaction:
    """What the card's cryptogram covers; `unpredictable` is the desk's 4-byte nonce."""

    amount_fen: int
    unpredictable: bytes
    when: dt.datetime
    kind: int = 0x00  # 9C transaction type: 00 goods and services, 01 cash, 31 inquiry

    def __post_init__(self) -> None:
        if not 0 <= self.amount_fen < 10**12:
            raise FieldInvalid("amount out of range")
        if len(self.unpredictable) != 4:
            raise FieldInvalid("the unpredictable number is 4 bytes")


def cdol_data(dol: list[tuple[int, int]], tx: Transaction) -> bytes:
    """The values a CDOL asks for on GENERATE AC: the transaction, then the terminal's data."""
    values = dict(TERMINAL_DATA)
    values[0x9F02] = bytes.fromhex(f"{tx.amount_fen:012d}")
    values[0x9A] = bytes.fromhex(tx.when.strftime("%y%m%d"))
    values[0x9F21] = bytes.fromhex(tx.when.strftime("%H%M%S"))
    values[0x9C] = bytes([tx.kind])
    values[0x9F37] = tx.unpredictable
    return dol_data(dol, values)


def dol_data(dol: list[tuple[int, int]], values: dict[int, bytes]) -> bytes:
    """Values for a data object list, each cut or zero-padded to its requested length."""
    out = b""
    for tag, length in dol:
        value = values.get(tag, b"")[:length]
        # numeric fields pad on the left, the rest on the right (EMV Book 3 §5.4)
        numeric = tag in (0x9F02, 0x9F03, 0x9F1A, 0x5F2A, 0x9A, 0x9F21)
        out += value.rjust(length, b"\x00") if numeric else value.ljust(length, b"\x00")
    return out


def parse_gpo(data: bytes) -> tuple[bytes, list[AflEntry]]:
    """(AIP, AFL) from a GPO answer in format 1 (tag 80) or format 2 (tag 77)."""
    elements = tlv.parse(data)
    if not elements:
        raise FieldInvalid("empty GPO answer")
    if elements[0].tag == 0x80:
        aip, afl = elements[0].value[:2], elements[0].value[2:]
    elif elements[0].tag == 0x77:
        aip, afl = tlv.find(elements, 0x82) or b"", tlv.find(elements, 0x94) or b""
    else:
        raise FieldInvalid(f"GPO answer with tag {elements[0].tag:X}")
    if len(aip) != 2 or len(afl) % 4 or not afl:
        raise FieldInvalid("GPO answer without a valid AIP and AFL")
    entries = [
        AflEntry(afl[i] >> 3, afl[i + 1], afl[i + 2], afl[i + 3]) for i in range(0, len(afl), 4)
    ]
    for e in entries:
        if not (1 <= e.sfi <= 30 and 1 <= e.first <= e.last):
            raise FieldInvalid(f"AFL entry {e} out of range")
    return aip, entries


def card_data(app: Application, records: list[list[tlv.Tlv]]) -> CardData:
    """Business fields from the application's records."""
    everything = [e for rec in records for e in rec]
    pan_bcd = tlv.find(everything, 0x5A)
    track2 = tlv.find(everything, 0x57)
    track2_hex = track2.hex().upper() if track2 else ""
    if pan_bcd:
        pan = pan_bcd.hex().upper().rstrip("F")
    elif "D" in track2_hex:
        pan = track2_hex.split("D", 1)[0]
    else:
        raise FieldInvalid("card records carry neither a PAN (5A) nor track 2 (57)")
    if not (pan.isdigit() and 12 <= len(pan) <= 19 and luhn_ok(pan)):
        raise FieldInvalid(f"PAN {mask_pan(pan)} is not a valid card number")
    expiry = _expiry(tlv.find(everything, 0x5F24), track2_hex)
    name = tlv.find(everything, 0x5F20)
    seq = tlv.find(everything, 0x5F34)
    scheme, product = app.scheme
    return CardData(
        aid=app.aid.hex().upper(),
        label=app.label,
        scheme=scheme,
        product=product,
        pan=pan,
        pan_sequence=int(seq.hex()) if seq and seq.hex().isdigit() else None,
        expiry=expiry,
        cardholder_name=name.decode("ascii", "replace").strip() or None if name else None,
    )


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _expiry(yymmdd: bytes | None, track2_hex: str) -> dt.date:
    if yymmdd:
        text = yymmdd.hex()
    elif "D" in track2_hex:
        text = track2_hex.split("D", 1)[1][:4] + "31"
    else:
        raise FieldInvalid("no expiry date (5F24) on the card")
    try:
        year, month = 2000 + int(text[:2]), int(text[2:4])
        if not 1 <= month <= 12:
            raise ValueError(f"month {month}")
        first_next = dt.date(year + month // 12, month % 12 + 1, 1)
    except ValueError as err:
        raise FieldInvalid(f"expiry {text!r} is not a date") from err
    return first_next - dt.timedelta(days=1)  # cards expire at the end of the month


@dataclass(frozen=True)
class CardProof:
    """The card's answer to GENERATE AC and what a verifier needs to recompute it.

    The PAN travels in clear only to the HSM request; repr and `pan_masked` hide it.
    """

    pan: str = field(repr=False)
    pan_sequence: int | None
    aip: bytes
    atc: int
    cid: int
    cryptogram: bytes
    iad: bytes
    cdol1: bytes
    cdol1_data: bytes

    @property
    def pan_masked(self) -> str:
        return mask_pan(self.pan)

    @property
    def is_arqc(self) -> bool:
        return self.cid & 0xC0 == 0x80

    def __repr__(self) -> str:
        return (
            f"CardProof(pan={self.pan_masked}, atc={self.atc}, cid={self.cid:02X}, "
            f"ac={self.cryptogram.hex().upper()})"
        )


def parse_generate_ac(data: bytes) -> tuple[int, int, bytes, bytes]:
    """(CID, ATC, cryptogram, issuer application data) from a format 1 (80) or 2 (77) answer."""
    elements = tlv.parse(data)
    if not elements:
        raise FieldInvalid("empty GENERATE AC answer")
    if elements[0].tag == 0x80:
        v = elements[0].value
        if len(v) < 11:
            raise FieldInvalid("GENERATE AC format 1 answer too short")
        cid, atc, ac, iad = v[0], v[1:3], v[3:11], v[11:]
    elif elements[0].tag == 0x77:
        cid_b = tlv.find(elements, 0x9F27) or b""
        atc = tlv.find(elements, 0x9F36) or b""
        ac = tlv.find(elements, 0x9F26) or b""
        iad = tlv.find(elements, 0x9F10) or b""
        if len(cid_b) != 1:
            raise FieldInvalid("GENERATE AC answer without a CID (9F27)")
        cid = cid_b[0]
    else:
        raise FieldInvalid(f"GENERATE AC answer with tag {elements[0].tag:X}")
    if len(atc) != 2 or len(ac) != 8:
        raise FieldInvalid("GENERATE AC answer without a 2-byte ATC and an 8-byte cryptogram")
    return cid, int.from_bytes(atc, "big"), ac, iad
