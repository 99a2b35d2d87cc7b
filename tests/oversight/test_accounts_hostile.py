"""Issue 21: a guesser cannot lock a teller out, and admin alone cannot make oversight roles."""

from __future__ import annotations

import httpx

from cloud.auth.models import Account, AuditEntry
from cloud.auth.ratelimit import LoginThrottle
from cloud.auth.roles import Role, grant_refusal
from tests.oversight.conftest import PASSWORD, Cloud


def test_throttle_refuses_the_guessing_address_and_only_delays_the_account() -> None:
    t = LoginThrottle(pair_limit=5, window_s=60, free_failures=3, base_delay_s=0.5, max_delay_s=4)
    for i in range(5):
        assert t.refused_for("wang", "10.0.0.66", 100.0 + i) is None
        t.failed("wang", "10.0.0.66", 100.0 + i)
    assert t.refused_for("wang", "10.0.0.66", 105.0) == 55.0  # the first failure leaves at 160
    assert t.refused_for("wang", "10.1.2.3", 105.0) is None  # the teller's own branch
    assert t.refused_for("li", "10.0.0.66", 105.0) is None  # other accounts from there
    assert t.delay("wang", 105.0) == 2.0  # 5 failures: 0.5 * 2 ** (5 - 3)
    for i in range(10):
        t.failed("wang", f"10.9.0.{i}", 106.0)
    assert t.delay("wang", 106.0) == 4.0  # capped, never a refusal
    assert t.delay("li", 106.0) == 0.0
    assert t.delay("wang", 166.5) == 0.0 and t.refused_for("wang", "10.0.0.66", 166.5) is None
    t.failed("li", "10.0.0.5", 200.0)
    t.succeeded("li", "10.0.0.5")
    assert t.refused_for("li", "10.0.0.5", 200.0) is None


def _from(cloud: Cloud, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=cloud.app, client=(address, 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://cloud")


async def test_guesser_on_one_address_cannot_lock_out_a_teller_on_another(cloud: Cloud) -> None:
    await cloud.client("wang", "teller")
    bad = {"username": "wang", "password": "not the password"}
    async with _from(cloud, "203.0.113.66") as attacker, _from(cloud, "10.20.0.7") as branch:
        codes = [
            (await attacker.post("/api/v1/auth/login", json=bad)).status_code for _ in range(8)
        ]
        assert codes == [401] * 5 + [429] * 3
        # the real teller, at the branch, while the guesser is still inside its window
        ok = await branch.post(
            "/api/v1/auth/login", json={"username": "wang", "password": PASSWORD}
        )
        assert ok.status_code == 200, ok.text
        still = await attacker.post(
            "/api/v1/auth/login", json={"username": "wang", "password": PASSWORD}
        )
        assert still.status_code == 429  # even the right password, from the guessing address
    throttled = await AuditEntry.filter(actor="wang", action="login_throttled").count()
    assert throttled == 4


async def test_admin_alone_cannot_make_a_supervisor_or_an_auditor(cloud: Cloud) -> None:
    admin = await cloud.client("root", "admin")
    body = {"id": "li", "password": PASSWORD, "roles": ["teller", "supervisor"]}
    refused = await admin.post("/api/v1/accounts", json=body)
    assert refused.status_code == 403
    assert "supervisor is granted by an account holding supervisor" in refused.json()["detail"]
    assert await Account.get_or_none(id="li") is None
    body["roles"] = ["teller"]
    assert (await admin.post("/api/v1/accounts", json=body)).status_code == 201
    assert (await admin.put("/api/v1/accounts/li/roles/supervisor")).status_code == 403
    assert (await admin.put("/api/v1/accounts/li/roles/auditor")).status_code == 403
    assert (await admin.put("/api/v1/accounts/li/roles/reviewer")).status_code == 200

    # The first supervisor came from the host (`cuntong accounts create`); they grant.
    boss = await cloud.client("zhao", "supervisor")
    granted = await boss.put("/api/v1/accounts/li/roles/supervisor")
    assert granted.status_code == 200 and granted.json()["roles"] == [
        "reviewer",
        "supervisor",
        "teller",
    ]
    assert (await boss.put("/api/v1/accounts/li/roles/auditor")).status_code == 403
    assert (await boss.put("/api/v1/accounts/li/roles/teller")).status_code == 403  # admin's
    assert (await boss.put("/api/v1/accounts/nobody/roles/supervisor")).status_code == 404
    assert (await boss.delete("/api/v1/accounts/zhao/roles/supervisor")).status_code == 403

    # One person holding both halves still cannot do both.
    both = await cloud.client("qian", "admin", "supervisor")
    assert (await both.put("/api/v1/accounts/li/roles/supervisor")).status_code == 403
    auditor = await cloud.client("sun", "auditor")
    assert (await auditor.put("/api/v1/accounts/li/roles/auditor")).status_code == 200
    assert (await auditor.delete("/api/v1/accounts/li/roles/auditor")).status_code == 200
    entries = await AuditEntry.filter(action__startswith="role_").order_by("id")
    assert [(e.actor, e.action, e.target, e.detail.get("role")) for e in entries] == [
        ("root", "role_grant_denied", "li", "supervisor"),
        ("root", "role_grant_denied", "li", "supervisor"),
        ("root", "role_grant_denied", "li", "auditor"),
        ("root", "role_grant", "li", "reviewer"),
        ("zhao", "role_grant", "li", "supervisor"),
        ("zhao", "role_grant_denied", "li", "auditor"),
        ("zhao", "role_grant_denied", "li", "teller"),
        ("qian", "role_grant_denied", "li", "supervisor"),
        ("sun", "role_grant", "li", "auditor"),
        ("sun", "role_revoke", "li", "auditor"),
    ]


def test_grant_rule_is_a_table() -> None:
    assert grant_refusal(frozenset({Role.ADMIN}), Role.TELLER) is None
    assert grant_refusal(frozenset({Role.ADMIN}), Role.SUPERVISOR) is not None
    assert grant_refusal(frozenset({Role.SUPERVISOR}), Role.SUPERVISOR) is None
    assert grant_refusal(frozenset({Role.SUPERVISOR, Role.ADMIN}), Role.SUPERVISOR) is not None
    assert grant_refusal(frozenset({Role.AUDITOR}), Role.SUPERVISOR) is not None
