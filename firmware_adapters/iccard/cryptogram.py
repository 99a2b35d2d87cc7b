"""The card's side of the EMV application cryptogram (EMV Book 2 Annex A1), as pure functions.

The emulated card is personalised with its own AC master key, derived from the issuer's
master key (IMK-AC) the way an issuer's personalisation bureau does it (Option A); on GENERATE
AC it derives a session key from its ATC and MACs the transaction data. The HSM service
(`hsm/`) repeats the same steps inside SoftHSM2 with the IMK that never leaves the token: the
two implementations are independent, and a test checks they agree.

- card master key, Option A (A1.4.1): Y = rightmost 16 digits of PAN ‖ PSN (2 digits),
  left-padded with zeros; MK = 3DES_IMK(Y) ‖ 3DES_IMK(Y ⊕ FF…FF), odd parity;
- session key, EMV common session key (A1.3.1) with R = ATC ‖ 00×6:
  SK = 3DES_MK(R0 R1 F0 R3..R7) ‖ 3DES_MK(R0 R1 0F R3..R7);
- cryptogram: ISO/IEC 9797-1 MAC algorithm 3 with padding method 2 (0x80 then zeros), single
  DES with the left key half over every block, then decrypt with the right half and encrypt
  with the left half, over CDOL1 data ‖ AIP ‖ ATC ‖ CVR.
"""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from firmware_adapters.errors import FieldInvalid


def _ecb(key: bytes, data: bytes, decrypt: bool = False) -> bytes:
    # an 8-byte key is single DES (K1 = K2 = K3); a 16-byte key is 2-key 3DES (K1 K2 K1)
    full = key * 3 if len(key) == 8 else key + key[:8]
    cipher = Cipher(TripleDES(full), modes.ECB())
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def odd_parity(key: bytes) -> bytes:
    """Each byte's low bit set so the byte has an odd number of ones (DES key parity)."""
    return bytes((b & 0xFE) | ((bin(b >> 1).count("1") + 1) % 2) for b in key)


def option_a_input(pan: str, psn: int | None) -> bytes:
    """Y: the rightmost 16 digits of PAN ‖ PSN (PSN '00' when absent), zero-padded left."""
    if not (pan.isdigit() and 12 <= len(pan) <= 19):
        raise FieldInvalid("a PAN has 12 to 19 digits")
    if psn is not None and not 0 <= psn <= 99:
        raise FieldInvalid("a PAN sequence number has two digits")
    digits = (pan + f"{psn or 0:02d}")[-16:].rjust(16, "0")
    return bytes.fromhex(digits)


def card_master_key(imk: bytes, pan: str, psn: int | None) -> bytes:
    """The card's AC master key from the issuer master key (Option A)."""
    if len(imk) != 16:
        raise FieldInvalid("an IMK is a 16-byte double-length 3DES key")
    y = option_a_input(pan, psn)
    return odd_parity(_ecb(imk, y) + _ecb(imk, bytes(b ^ 0xFF for b in y)))


def session_key_input(r: bytes) -> bytes:
    """The 16 bytes the card master key encrypts: R with byte 3 set to F0, then to 0F."""
    if len(r) != 8:
        raise FieldInvalid("the session key diversifier R is 8 bytes")
    return r[:2] + b"\xf0" + r[3:] + r[:2] + b"\x0f" + r[3:]


def atc_diversifier(atc: int) -> bytes:
    """R for the application cryptogram: the ATC then six zero bytes."""
    if not 0 <= atc <= 0xFFFF:
        raise FieldInvalid("the ATC is two bytes")
    return atc.to_bytes(2, "big") + bytes(6)


def session_key(mk: bytes, r: bytes) -> bytes:
    """EMV common session key derivation (A1.3.1) from the card master key and R."""
    return _ecb(mk, session_key_input(r))


def pad_method_2(data: bytes) -> bytes:
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % 8)


def mac_algorithm_3(key: bytes, data: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 (retail MAC), padding method 2, 8-byte result."""
    if len(key) != 16:
        raise FieldInvalid("MAC algorithm 3 takes a 16-byte key")
    left, right = key[:8], key[8:]
    padded = pad_method_2(data)
    h = bytes(8)
    for i in range(0, len(padded), 8):
        h = _ecb(left, bytes(a ^ b for a, b in zip(h, padded[i : i + 8], strict=True)))
    return _ecb(left, _ecb(right, h, decrypt=True))


def arqc_input(cdol1_data: bytes, aip: bytes, atc: int, cvr: bytes) -> bytes:
    """What the cryptogram covers: the terminal's CDOL1 data, then AIP, ATC and CVR."""
    if len(aip) != 2 or len(cvr) != 4:
        raise FieldInvalid("AIP is 2 bytes and CVR 4 bytes")
    return cdol1_data + aip + atc.to_bytes(2, "big") + cvr


def arqc(mk: bytes, atc: int, cdol1_data: bytes, aip: bytes, cvr: bytes) -> bytes:
    """The 8-byte application cryptogram the card returns for this ATC and data."""
    sk = session_key(mk, atc_diversifier(atc))
    return mac_algorithm_3(sk, arqc_input(cdol1_data, aip, atc, cvr))
