"""Pure claim rules: every refusal reason, and the order they are checked in."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from provisioning import claims
from provisioning.errors import ClaimRefused

NOW = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
TOKEN = claims.new_token()
CLAIM_ID, SECRET = claims.parse_token(TOKEN.token)
BASE = claims.ClaimState(
    claim_id=CLAIM_ID,
    secret_hash=TOKEN.secret_hash,
    expires_at=NOW + dt.timedelta(days=1),
    max_uses=2,
    uses=1,
    hardware_model="ZN-E100",
    region_scope=("陕西省", "西安市"),
    id_prefix="SX-B07-",
)
PLACE = ("陕西省", "西安市", "长安区", "王莽村")


def reason(claim: claims.ClaimState, secret: str = SECRET, **kw: object) -> str:
    args = {"hardware_model": "ZN-E100", "region": PLACE, "terminal_id": "SX-B07-0001"}
    args.update(kw)
    try:
        claims.check(claim, secret, NOW, **args)  # type: ignore[arg-type]
    except ClaimRefused as err:
        return err.reason
    return "ok"


def test_token_round_trip_and_garbage() -> None:
    assert TOKEN.claim_id == CLAIM_ID and TOKEN.token.startswith("ctk_")
    for bad in ("", "ctk_", "ctk_abc", "ctk_.x", "ctk_abc.", "xyz_abc.def"):
        with pytest.raises(ClaimRefused):
            claims.parse_token(bad)


@pytest.mark.parametrize(
    ("change", "kwargs", "expected"),
    [
        ({}, {}, "ok"),
        ({}, {"secret": "wrong"}, "unknown_claim"),
        ({"revoked_at": NOW}, {}, "revoked"),
        ({"revoked_at": NOW + dt.timedelta(hours=1)}, {}, "ok"),  # revocation scheduled later
        ({"expires_at": NOW}, {}, "expired"),
        ({"uses": 2}, {}, "exhausted"),
        ({}, {"hardware_model": "ZN-E2"}, "wrong_model"),
        ({}, {"terminal_id": "SX-B08-0001"}, "wrong_id"),
        ({}, {"region": ("陕西省", "宝鸡市", "陈仓区", "东风村")}, "out_of_region"),
        ({}, {"region": ("湖南省", "西安市", "x", "y")}, "out_of_region"),
        (
            {"region_scope": (), "hardware_model": None, "id_prefix": ""},
            {"hardware_model": "any", "terminal_id": "Z1", "region": ("湖南省",) * 4},
            "ok",
        ),
        # A wrong secret hides everything else about the claim.
        ({"revoked_at": NOW, "uses": 9}, {"secret": "wrong"}, "unknown_claim"),
    ],
)
def test_rules(change: dict[str, object], kwargs: dict[str, object], expected: str) -> None:
    secret = str(kwargs.pop("secret", SECRET))
    assert reason(dataclasses.replace(BASE, **change), secret, **kwargs) == expected  # type: ignore[arg-type]
