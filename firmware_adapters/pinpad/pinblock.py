"""ISO 9564 PIN blocks built inside the (simulated) pad; the host only sees ciphertext.

- format 0 (ANSI X9.8), 8 bytes, 3DES: `0 L PIN F...` XOR `0000` + 12 rightmost PAN digits
  without the check digit;
- format 4, 16 bytes, AES: E(E(`4 L PIN A... | 8 random bytes`) XOR `M PAN 0...`);
- SM4 variant ("X9.8 with PAN", 16 bytes): `0 L PIN F...` (32 nibbles) XOR 20 zero nibbles +
  the 12 PAN digits, then SM4-ECB. This is the Chinese banks' practice, see docs/peripherals.md.
"""

from __future__ import annotations

from firmware_adapters.errors import FieldInvalid
from firmware_adapters.pinpad import crypto

#: format code on the wire -> (cipher algorithm, description)
FORMATS: dict[str, tuple[str, str]] = {
    "0": ("D", "ISO 9564 format 0, 3DES"),
    "4": ("A", "ISO 9564 format 4, AES"),
    "S": ("S", "ISO 9564 format 0 widened to 16 bytes, SM4"),
}


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _check_pin(pin: str) -> None:
    if not (4 <= len(pin) <= 12 and pin.isdigit()):
        raise FieldInvalid("a PIN has 4 to 12 digits")


def _check_pan(pan: str) -> None:
    if not (13 <= len(pan) <= 19 and pan.isdigit()):
        raise FieldInvalid("a PAN has 13 to 19 digits")


def pan_field_12(pan: str) -> str:
    """The 12 rightmost PAN digits excluding the check digit."""
    _check_pan(pan)
    return pan[-13:-1]


def iso0_clear(pin: str, pan: str) -> bytes:
    _check_pin(pin)
    pin_field = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    pan_field = bytes.fromhex("0000" + pan_field_12(pan))
    return _xor(pin_field, pan_field)


def sm4_clear(pin: str, pan: str) -> bytes:
    _check_pin(pin)
    pin_field = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(32, "F"))
    pan_field = bytes.fromhex("0" * 20 + pan_field_12(pan))
    return _xor(pin_field, pan_field)


def iso4_fields(pin: str, pan: str, fill: bytes) -> tuple[bytes, bytes]:
    """(PIN field, PAN field) of format 4; `fill` is 8 random bytes from the pad's RNG."""
    _check_pin(pin)
    _check_pan(pan)
    if len(fill) != 8:
        raise FieldInvalid("format 4 needs 8 bytes of random fill")
    pin_field = bytes.fromhex(f"4{len(pin):X}{pin}".ljust(16, "A")) + fill
    pan_field = bytes.fromhex(f"{len(pan) - 12:X}{pan}".ljust(32, "0"))
    return pin_field, pan_field


def encrypt_pin_block(fmt: str, key: bytes, pin: str, pan: str, fill: bytes) -> bytes:
    """The encrypted PIN block in format `fmt` (see FORMATS)."""
    match fmt:
        case "0":
            return crypto.encrypt("D", key, iso0_clear(pin, pan))
        case "S":
            return crypto.encrypt("S", key, sm4_clear(pin, pan))
        case "4":
            pin_field, pan_field = iso4_fields(pin, pan, fill)
            inner = crypto.encrypt("A", key, pin_field)
            return crypto.encrypt("A", key, _xor(inner, pan_field))
    raise FieldInvalid(f"unknown PIN block format {fmt!r}")
