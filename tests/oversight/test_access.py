"""Accounts, login, RBAC, masking with audited reveal, the audit log — on both databases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tortoise.exceptions import OperationalError

from cloud.auth.errors import AuditLogImmutable
from cloud.auth.masking import mask_card_number, mask_id_number, mask_name, mask_phone
from cloud.auth.models import AuditEntry
from cloud.evidence import service
from cloud.evidence.chain import Timeline
from cloud.evidence.package import EvidenceFile
from tests.oversight.conftest import PASSWORD, Cloud

CUSTOMER = {
    "name": "王美娜",
    "id_number": "610102199001011234",
    "card_number": "6217000012341234",
    "phone": "13812345678",
}


async def _archive(cloud: Cloud, session_id: str, teller: str) -> None:
    timeline = Timeline(cloud.ov.suite)
    timeline.append("session_start", teller, cloud.clock())
    for step in ("dual_recording", "id_card_read"):  # in progress: the first two steps
        timeline.append("step", teller, cloud.clock(), {"step": step})
    await service.archive(
        cloud.ov,
        session_id=session_id,
        business="card_loss",
        operator_id=teller,
        supervisor_id="sup",
        outcome="completed",
        timeline=timeline,
        files=[EvidenceFile("esign.png", "e_signature", b"sig")],
        customer=CUSTOMER,
        now=cloud.clock(),
    )


def test_masks() -> None:
    assert mask_id_number("610102199001011234") == "6101**********1234"
    assert mask_card_number("6217 0000 1234 1234") == "6217********1234"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("王美娜") == "王**"
    assert mask_id_number("123") == "***"


async def test_teller_sees_only_own_sessions_masked_and_cannot_reveal(cloud: Cloud) -> None:
    await _archive(cloud, "S-1", "alice")
    await _archive(cloud, "S-2", "bob")
    alice = await cloud.client("alice", "teller")
    mine = await alice.get("/api/v1/evidence/S-1")
    assert mine.status_code == 200, mine.text
    assert mine.json()["customer"] == {
        "name": "王**",
        "id_number": "6101**********1234",
        "card_number": "6217********1234",
        "phone": "138****5678",
    }
    assert (await alice.get("/api/v1/evidence/S-2")).status_code == 404  # bob's
    assert (
        await alice.post("/api/v1/evidence/S-2/reveal", json={"field": "name"})
    ).status_code == 404
    denied = await alice.post("/api/v1/evidence/S-1/reveal", json={"field": "id_number"})
    assert denied.status_code == 403
    assert (await alice.get("/api/v1/evidence/S-1/verify")).status_code == 403

    sup = await cloud.client("sup", "supervisor")
    shown = await sup.post("/api/v1/evidence/S-2/reveal", json={"field": "id_number"})
    assert shown.json() == {"id_number": "610102199001011234"}
    verified = await sup.get("/api/v1/evidence/S-2/verify")
    assert verified.json()["ok"] is True and verified.json()["events"] == 3

    trail = [
        (e.actor, e.action, e.target, e.detail.get("field"))
        for e in await AuditEntry.all().order_by("id")
        if e.action not in ("login",)
    ]
    assert trail == [
        ("alice", "evidence_view", "S-1", None),
        ("alice", "reveal_denied", "S-1", "id_number"),
        ("sup", "reveal", "S-2", "id_number"),
        ("sup", "evidence_verify", "S-2", None),
    ]


async def test_rbac_login_expiry_and_rate_limit(cloud: Cloud) -> None:
    assert (await cloud.http.get("/api/v1/accounts")).status_code == 401
    teller = await cloud.client("t1", "teller")
    assert (await teller.get("/api/v1/accounts")).status_code == 403
    assert (await teller.get("/api/v1/audit")).status_code == 403
    admin = await cloud.client("root", "admin")
    made = await admin.post(
        "/api/v1/accounts", json={"id": "rev", "password": PASSWORD, "roles": ["reviewer"]}
    )
    assert made.status_code == 201 and made.json()["roles"] == ["reviewer"]
    dup = await admin.post(
        "/api/v1/accounts", json={"id": "rev", "password": PASSWORD, "roles": ["reviewer"]}
    )
    assert dup.status_code == 409
    assert (await admin.get("/api/v1/evidence/S-9")).status_code == 403  # admin is no super-user
    assert (await teller.get("/api/v1/auth/me")).json()["roles"] == ["teller"]

    cloud.clock.advance(hours=8, seconds=1)
    assert (await teller.get("/api/v1/auth/me")).status_code == 401  # session expired

    auditor = await cloud.client("aud", "auditor")
    assert (await auditor.post("/api/v1/auth/logout")).status_code == 204
    assert (await auditor.get("/api/v1/auth/me")).status_code == 401

    bad = {"username": "rev", "password": "wrong password!"}
    codes = [(await cloud.http.post("/api/v1/auth/login", json=bad)).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    good = {"username": "rev", "password": PASSWORD}
    throttled = await cloud.http.post("/api/v1/auth/login", json=good)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1


async def test_audit_log_is_append_only_and_readable_by_auditor(cloud: Cloud) -> None:
    auditor = await cloud.client("aud", "auditor")
    entries = (await auditor.get("/api/v1/audit", params={"actor": "aud"})).json()
    assert [e["action"] for e in entries] == ["login"]
    entry = await AuditEntry.get(id=entries[0]["id"])
    entry.action = "nothing happened"
    with pytest.raises(AuditLogImmutable):
        await entry.save()
    with pytest.raises(AuditLogImmutable):
        await entry.delete()
    # Not even a bulk update or delete, which bypasses the model: the database refuses.
    with pytest.raises(OperationalError, match="append-only"):
        await AuditEntry.filter(actor="aud").update(action="nothing happened")
    with pytest.raises(OperationalError, match="append-only"):
        await AuditEntry.filter(actor="aud").delete()
    assert (await AuditEntry.filter(actor="aud").values_list("action", flat=True)) == [
        "login",
        "audit_view",
    ]


async def test_retention_purge_respects_legal_hold_and_leaves_audit(cloud: Cloud) -> None:
    await _archive(cloud, "S-old", "alice")
    await _archive(cloud, "S-held", "alice")
    admin = await cloud.client("root", "admin")
    auditor = await cloud.client("aud", "auditor")
    held = await auditor.put(
        "/api/v1/evidence/S-held/legal-hold", json={"hold": True, "reason": "dispute"}
    )
    assert held.json()["legal_hold"] is True
    assert (await admin.post("/api/v1/evidence/purge")).json() == {"deleted": []}
    cloud.clock.advance(days=cloud.ov.catalogue.get("card_loss").retention_days)
    admin = await cloud.client("root2", "admin")
    assert (await admin.post("/api/v1/evidence/purge")).json() == {"deleted": ["S-old"]}
    assert not (cloud.ov.evidence_dir / "S-old").exists()
    assert (cloud.ov.evidence_dir / "S-held").exists()
    gone = await AuditEntry.get(action="evidence_delete")
    assert (gone.actor, gone.target) == ("root2", "S-old")
    auditor = await cloud.client("aud2", "auditor")
    view = (await auditor.get("/api/v1/evidence/S-old")).json()
    assert view["deleted_at"] is not None and view["customer"] == {}
    assert (await auditor.get("/api/v1/evidence/S-old/verify")).status_code == 410
    assert cloud.clock() > dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_accounts_cli_creates_an_admin_who_can_log_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from cloud.cli import add_parser

    monkeypatch.setenv("CUNTONG_ACCOUNT_PASSWORD", PASSWORD)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    db = f"sqlite://{tmp_path / 'c.sqlite3'}"
    args = parser.parse_args(["accounts", "--db-url", db, "create", "root", "--role", "admin"])
    args.func(args)
    args = parser.parse_args(["accounts", "--db-url", db, "list"])
    args.func(args)
    assert capsys.readouterr().out == "created root (admin)\nroot\tadmin\t\n"


def test_every_oversight_route_is_guarded() -> None:
    from cloud.api.app import API_PREFIX, OVERSIGHT_ROUTERS
    from cloud.auth.deps import unguarded_routes

    public = frozenset({
        "POST /api/v1/auth/login",  # how a login starts
        "GET /api/v1/ops/screen",  # static page; the data it polls is guarded
    })  # fmt: skip
    assert sum(len(r.routes) for r in OVERSIGHT_ROUTERS) >= 20
    assert unguarded_routes(OVERSIGHT_ROUTERS, public, API_PREFIX) == []
    from fastapi import APIRouter

    leaky = APIRouter()
    leaky.get("/x")(lambda: None)
    assert unguarded_routes([leaky], public) == ["GET /x"]


def test_token_cache_ttl_login_expiry_and_bound() -> None:
    from cloud.auth.cache import TokenCache

    now = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
    cache: TokenCache[str] = TokenCache(ttl_s=2.0, max_entries=2)
    cache.put("a", "alice", now + dt.timedelta(hours=8), tick=100.0)
    assert cache.get("a", 101.9, now) == "alice"
    assert cache.get("a", 102.0, now) is None  # ttl over: back to the database
    cache.put("a", "alice", now + dt.timedelta(seconds=1), tick=200.0)
    assert cache.get("a", 200.5, now + dt.timedelta(seconds=1)) is None  # login expired
    cache.put("b", "bob", now + dt.timedelta(hours=8), tick=300.0)
    cache.drop("b")
    assert cache.get("b", 300.1, now) is None
    for key in "cde":
        cache.put(key, key, now + dt.timedelta(hours=8), tick=400.0)
    assert len(cache._entries) <= 2
