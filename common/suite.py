"""The crypto-suite switch: standard (SHA-256, HMAC-SHA256, AES-256-GCM) or 国密 (SM3, HMAC-SM3,
SM4-GCM), chosen by one setting (``CUNTONG_CRYPTO_SUITE=standard|sm``).

The suite covers hashes, message MACs and payload encryption. TLS stays standard in both
(mosquitto and the terminals' OpenSSL speak no SM TLS), and so do certificate and command
signatures (ECDSA P-256 / Ed25519). MAC tags name their algorithm (``hmac-sm3:<hex>``), so a
cloud can accept both suites while a bank migrates.
"""

from __future__ import annotations

import hmac as std_hmac
import os
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from common.errors import DecryptError

NONCE_BYTES = 12
TAG_BYTES = 16


class Suite(StrEnum):
    STANDARD = "standard"
    SM = "sm"


@dataclass(frozen=True, slots=True)
class _Algorithms:
    hash: type[hashes.HashAlgorithm]
    mac_name: str
    cipher: type[algorithms.AES] | type[algorithms.SM4]
    key_bytes: int


_TABLE: dict[Suite, _Algorithms] = {
    Suite.STANDARD: _Algorithms(hashes.SHA256, "hmac-sha256", algorithms.AES, 32),
    Suite.SM: _Algorithms(hashes.SM3, "hmac-sm3", algorithms.SM4, 16),
}
_BY_MAC_NAME = {algo.mac_name: suite for suite, algo in _TABLE.items()}


def key_bytes(suite: Suite) -> int:
    """Length of a payload-encryption key for this suite."""
    return _TABLE[suite].key_bytes


def digest(suite: Suite, data: bytes) -> bytes:
    h = hashes.Hash(_TABLE[suite].hash())
    h.update(data)
    return h.finalize()


def mac(suite: Suite, key: bytes, data: bytes) -> str:
    """A self-describing MAC tag: ``<algorithm>:<hex>``."""
    algo = _TABLE[suite]
    h = crypto_hmac.HMAC(key, algo.hash())
    h.update(data)
    return f"{algo.mac_name}:{h.finalize().hex()}"


def verify_mac(key: bytes, data: bytes, tag: str, accepted: frozenset[Suite]) -> bool:
    """True if ``tag`` is a valid MAC of ``data`` under ``key`` in one of the accepted suites."""
    name, _, _ = tag.partition(":")
    suite = _BY_MAC_NAME.get(name)
    if suite is None or suite not in accepted:
        return False
    return std_hmac.compare_digest(mac(suite, key, data), tag)


def derive_key(suite: Suite, master: bytes, purpose: str, length: int = 32) -> bytes:
    """A per-purpose key (e.g. ``event-mac:<terminal id>``) from a master secret."""
    out = b""
    counter = 0
    while len(out) < length:
        counter += 1
        h = crypto_hmac.HMAC(master, _TABLE[suite].hash())
        h.update(purpose.encode() + counter.to_bytes(4, "big"))
        out += h.finalize()
    return out[:length]


def encrypt(suite: Suite, key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """``nonce || ciphertext || tag`` with AES-256-GCM or SM4-GCM."""
    nonce = os.urandom(NONCE_BYTES)
    enc = Cipher(_TABLE[suite].cipher(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    body = enc.update(plaintext) + enc.finalize()
    return nonce + body + enc.tag


def decrypt(suite: Suite, key: bytes, sealed: bytes, aad: bytes = b"") -> bytes:
    """Inverse of ``encrypt``; DecryptError if anything was changed."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise DecryptError("ciphertext too short")
    nonce, body, tag = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:-TAG_BYTES], sealed[-TAG_BYTES:]
    dec = Cipher(_TABLE[suite].cipher(key), modes.GCM(nonce, tag)).decryptor()
    dec.authenticate_additional_data(aad)
    try:
        return dec.update(body) + dec.finalize()
    except InvalidTag as err:
        raise DecryptError("authentication tag does not verify") from err
