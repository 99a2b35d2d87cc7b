"""Enrolment claims: the pure rules (AWS IoT "fleet provisioning by claim" / Azure DPS style).

A factory writes a claim token onto each terminal of a batch. A claim is bounded: it
expires, it allows at most ``max_uses`` enrolments (1 = one-time token), it can be revoked,
and it may be scoped to one hardware model, a terminal-id prefix (the batch's serial range)
and a region prefix (province, city, ...), so a token leaked from a Shaanxi batch can
neither enrol a terminal claiming to stand in Hunan nor squat on other batches' ids.

The token is ``ctk_<claim_id>.<secret>``; the cloud stores only SHA-256 of the secret. Rules
check the secret first (constant time), so someone without it learns nothing about the
claim's state. Time is an argument.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from provisioning.errors import ClaimRefused

TOKEN_PREFIX = "ctk_"


@dataclass(frozen=True, slots=True)
class ClaimState:
    """What the rules need to know about a stored claim."""

    claim_id: str
    secret_hash: str
    expires_at: dt.datetime
    max_uses: int
    uses: int
    revoked_at: dt.datetime | None = None
    hardware_model: str | None = None
    #: Region prefix the terminal must lie in, e.g. ("陕西省", "西安市"); empty = anywhere.
    region_scope: tuple[str, ...] = ()
    #: Terminal ids this claim may enrol start with this (the batch's serial range).
    id_prefix: str = ""


@dataclass(frozen=True, slots=True)
class NewToken:
    claim_id: str
    token: str  # shown once, written onto the terminals; never stored by the cloud
    secret_hash: str


def new_token() -> NewToken:
    claim_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(24)
    return NewToken(claim_id, f"{TOKEN_PREFIX}{claim_id}.{secret}", hash_secret(secret))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str]:
    """(claim_id, secret); ClaimRefused('malformed') if the token is not ours."""
    if not token.startswith(TOKEN_PREFIX) or "." not in token:
        raise ClaimRefused("malformed", "not a claim token")
    claim_id, _, secret = token[len(TOKEN_PREFIX) :].partition(".")
    if not claim_id or not secret:
        raise ClaimRefused("malformed", "not a claim token")
    return claim_id, secret


def check(
    claim: ClaimState,
    secret: str,
    now: dt.datetime,
    hardware_model: str,
    region: Sequence[str],
    terminal_id: str = "",
) -> None:
    """Raise ClaimRefused unless this claim allows one more enrolment of this terminal."""
    if not hmac.compare_digest(hash_secret(secret), claim.secret_hash):
        raise ClaimRefused("unknown_claim")
    if claim.revoked_at is not None and claim.revoked_at <= now:
        raise ClaimRefused("revoked", f"claim {claim.claim_id} revoked")
    if now >= claim.expires_at:
        raise ClaimRefused("expired", f"claim {claim.claim_id} expired {claim.expires_at}")
    if claim.uses >= claim.max_uses:
        raise ClaimRefused("exhausted", f"claim {claim.claim_id} used {claim.uses} times")
    if claim.hardware_model and claim.hardware_model != hardware_model:
        raise ClaimRefused("wrong_model", f"claim is for {claim.hardware_model}")
    if not terminal_id.startswith(claim.id_prefix):
        raise ClaimRefused("wrong_id", f"claim enrols only ids starting {claim.id_prefix!r}")
    scope = claim.region_scope
    if tuple(region[: len(scope)]) != scope:
        raise ClaimRefused("out_of_region", f"claim is for {'/'.join(scope)}")
