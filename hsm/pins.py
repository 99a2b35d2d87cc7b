"""PIN-block rules inside the HSM, as pure functions: format 0 decoding, PIN policy and the
IBM 3624 PIN offset.

The PIN pad builds blocks (`firmware_adapters.pinpad.pinblock`); this module is the HSM's own,
independent reading of them. A block decrypted under the wrong key is noise, and noise almost
never reads as a valid format 0 block (control nibble 0, length 4-12, decimal digits, F fill):
that check is how a block under the wrong key is refused.
"""

from __future__ import annotations

import itertools

from hsm.errors import HsmRefused


def pan_digits(pan: str) -> str:
    """The 12 rightmost PAN digits without the check digit (ISO 9564 format 0)."""
    if not (pan.isdigit() and 13 <= len(pan) <= 19):
        raise HsmRefused("bad_request", "a PAN has 13 to 19 digits")
    return pan[-13:-1]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def decode_format0(clear_block: bytes, pan: str) -> str:
    """The PIN inside a decrypted format 0 block; HsmRefused(pin_block_invalid) otherwise."""
    if len(clear_block) != 8:
        raise HsmRefused("bad_request", "a format 0 PIN block is 8 bytes")
    field = _xor(clear_block, bytes.fromhex("0000" + pan_digits(pan))).hex().upper()
    length = int(field[1], 16)
    pin, fill = field[2 : 2 + length], field[2 + length :]
    if field[0] != "0" or not 4 <= length <= 12 or not pin.isdigit() or set(fill) - {"F"}:
        raise HsmRefused("pin_block_invalid", "the block does not decrypt to a format 0 PIN")
    return pin


def encode_format0(pin: str, pan: str) -> bytes:
    """The clear format 0 block for a PIN and PAN (used inside the service only)."""
    field = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    return _xor(field, bytes.fromhex("0000" + pan_digits(pan)))


def check_new_pin(pin: str, confirmation: str) -> None:
    """A new PIN and its confirmation must agree and not be trivially guessable."""
    if pin != confirmation:
        raise HsmRefused("pin_mismatch", "the new PIN and its confirmation differ")
    steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
    if len(set(pin)) == 1 or steps in ({1}, {-1}):
        raise HsmRefused("pin_weak", "all-same or consecutive digits are not allowed")


#: The IBM 3624 decimalisation table: hex digit i of the encrypted validation data becomes
#: ``DECIMALISATION[i]``. A bank sets its own; this is the common default.
DECIMALISATION = "0123456789012345"


def validation_data(pan: str) -> bytes:
    """IBM 3624 validation data: the 12 rightmost PAN digits without the check digit, padded
    on the right with the pad character F to 16 hex digits."""
    return bytes.fromhex(pan_digits(pan) + "FFFF")


def natural_pin(encrypted_validation: bytes, length: int) -> str:
    """The card's natural PIN: the first ``length`` hex digits of the encrypted validation
    data, decimalised."""
    return "".join(DECIMALISATION[int(c, 16)] for c in encrypted_validation.hex()[:length])


def pin_offset(pin: str, natural: str) -> str:
    """The IBM 3624 offset the issuer stores: (PIN - natural PIN) mod 10, digit by digit. It
    says nothing about the PIN without the PVK that makes the natural PIN."""
    return "".join(str((int(p) - int(n)) % 10) for p, n in zip(pin, natural, strict=True))
