"""The cloud's own time-stamping authority: RFC 3161-*style* tokens, honestly labelled.

A token binds a message imprint (the hash of the package seal's signature, as RFC 3161
signature time-stamps do) to the TSA's clock and a serial number, signed with the TSA key:

    token = {version, policy, serial, gen_time, imprint_alg, imprint}
    signature = Ed25519(tsa_key, canonical(token))

What this is not: it is JSON, not a DER ``TimeStampResp``, and the authority is the bank's own
cloud, not an accredited third-party TSA (可信时间戳 service). It proves the package existed
and was unchanged at ``gen_time`` *if* you trust the cloud's clock and TSA key. A bank that
needs court-grade time can put a licensed TSA's token in the same slot.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.evidence.canonical import canonical
from cloud.evidence.keys import key_id, public_pem

POLICY = "cuntong.cloud-tsa.v1"


@dataclass(frozen=True, slots=True)
class Token:
    serial: int
    gen_time: str
    imprint_alg: str
    imprint: str

    def body(self) -> dict[str, Any]:
        return {
            "version": 1,
            "policy": POLICY,
            "serial": self.serial,
            "gen_time": self.gen_time,
            "imprint_alg": self.imprint_alg,
            "imprint": self.imprint,
        }


def stamp(
    key: ed25519.Ed25519PrivateKey, imprint_alg: str, imprint: str, serial: int, now: dt.datetime
) -> dict[str, Any]:
    """A signed token over ``imprint`` (hex) at ``now``."""
    if now.tzinfo is None:
        raise ValueError("naive datetime; pass an aware UTC time")
    token = Token(serial, now.astimezone(dt.UTC).isoformat(), imprint_alg, imprint).body()
    return {
        "token": token,
        "alg": "ed25519",
        "key_id": key_id(key.public_key()),
        "public_key": public_pem(key.public_key()),
        "signature": key.sign(canonical(token)).hex(),
    }


def check(stamped: dict[str, Any], key: ed25519.Ed25519PublicKey, imprint: str) -> list[str]:
    """Problems with a token (empty if it is valid for ``imprint`` under ``key``)."""
    try:
        token = stamped["token"]
        signature = bytes.fromhex(stamped["signature"])
    except (KeyError, TypeError, ValueError):
        return ["timestamp: token malformed"]
    problems = []
    try:
        key.verify(signature, canonical(token))
    except InvalidSignature:
        problems.append("timestamp: TSA signature invalid (token altered or another TSA key)")
    if token.get("imprint") != imprint:
        problems.append("timestamp: token does not cover this package's seal")
    if token.get("policy") != POLICY:
        problems.append(f"timestamp: unknown policy {token.get('policy')!r}")
    return problems
