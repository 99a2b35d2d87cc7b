"""Block ciphers the pad uses (single-block ECB only): 3DES, AES and SM4, plus key checks."""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from firmware_adapters.errors import FieldInvalid

#: algorithm code on the wire -> (name, block size, allowed key lengths)
ALGORITHMS: dict[str, tuple[str, int, tuple[int, ...]]] = {
    "D": ("3DES", 8, (16, 24)),
    "A": ("AES", 16, (16, 24, 32)),
    "S": ("SM4", 16, (16,)),
}


def _cipher(alg: str, key: bytes) -> Cipher[modes.ECB]:
    try:
        _name, _block, lengths = ALGORITHMS[alg]
    except KeyError as err:
        raise FieldInvalid(f"unknown algorithm code {alg!r}") from err
    if len(key) not in lengths:
        raise FieldInvalid(f"{ALGORITHMS[alg][0]} key of {len(key)} bytes")
    if alg == "D":
        # double-length keys (the banks' norm) are K1 K2 K1 as a triple-length key
        return Cipher(TripleDES(key if len(key) == 24 else key + key[:8]), modes.ECB())
    if alg == "A":
        return Cipher(algorithms.AES(key), modes.ECB())
    return Cipher(algorithms.SM4(key), modes.ECB())


def block_size(alg: str) -> int:
    return ALGORITHMS[alg][1]


def encrypt(alg: str, key: bytes, data: bytes) -> bytes:
    """ECB-encrypt whole blocks (no padding: PIN and key blocks are block-sized)."""
    if len(data) % block_size(alg):
        raise FieldInvalid(f"{len(data)} bytes is not a whole number of blocks")
    enc = _cipher(alg, key).encryptor()
    return enc.update(data) + enc.finalize()


def decrypt(alg: str, key: bytes, data: bytes) -> bytes:
    if len(data) % block_size(alg):
        raise FieldInvalid(f"{len(data)} bytes is not a whole number of blocks")
    dec = _cipher(alg, key).decryptor()
    return dec.update(data) + dec.finalize()


def key_check_value(alg: str, key: bytes) -> bytes:
    """First 8 bytes of the key encrypting a zero block (the KCV banks print on key slips)."""
    return encrypt(alg, key, bytes(block_size(alg)))[:8]
