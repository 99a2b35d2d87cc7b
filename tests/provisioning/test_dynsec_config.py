"""The dynamic-security state ``broker.prepare`` writes (pure): roles, clients, kept terminals."""

from __future__ import annotations

from provisioning import dynsec
from provisioning.grants import TERMINAL_GRANTS


def _acls(config: dict, role: str) -> list[tuple[str, str]]:
    (found,) = [r for r in config["roles"] if r["rolename"] == role]
    return [(a["acltype"], a["topic"]) for a in found["acls"]]


def test_terminal_role_is_exactly_its_own_grants() -> None:
    config = dynsec.initial_config({"api": "cloud", "api-admin": "admin"}, ["SX-1"])
    acls = _acls(config, "t:SX-1")
    assert all("SX-1" in topic for _, topic in acls)
    sends = [t for kind, t in acls if kind == "publishClientSend"]
    subs = [t for kind, t in acls if kind == "subscribePattern"]
    assert len(sends) + len(subs) == len(TERMINAL_GRANTS)
    assert subs == [
        "cuntong/v1/t/SX-1/cmd/#",
        "cuntong/v1/t/SX-1/desk",
        "cuntong/v1/t/SX-1/ack",
    ]
    assert config["defaultACLAccess"]["subscribe"] is False
    assert config["defaultACLAccess"]["publishClientSend"] is False
    # Only the admin role may drive the plugin.
    control = [
        r["rolename"]
        for r in config["roles"]
        for a in r["acls"]
        if a["topic"].startswith("$CONTROL") and a["acltype"] == "publishClientSend"
    ]
    assert control == ["admin"]
    users = {c["username"]: c["roles"] for c in config["clients"]}
    assert users["svc.api-admin"] == [{"rolename": "admin"}]
    assert users["SX-1"] == [{"rolename": "t:SX-1"}]


def test_saved_terminals_survive_and_services_are_rewritten() -> None:
    saved = dynsec.initial_config({"old": "cloud"}, ["SX-1", "SX-2"])
    # The broker saved SX-2 as disabled (no role): prepare must not re-enable it.
    for client in saved["clients"]:
        if client["username"] == "SX-2":
            client["roles"], client["disabled"] = [], True
    config = dynsec.initial_config({"api": "cloud"}, [], saved)
    users = {c["username"]: c for c in config["clients"]}
    assert "svc.old" not in users and "svc.api" in users
    assert users["SX-2"]["disabled"] is True and users["SX-2"]["roles"] == []
    assert users["SX-1"]["roles"] == [{"rolename": "t:SX-1"}]


def test_a_terminal_enrolled_before_a_new_channel_gains_it_on_prepare() -> None:
    """Roles saved by an older broker lack the ``ack`` grant; ``prepare`` rewrites them from
    today's table, so an enrolled terminal can subscribe to its storage confirmations."""
    saved = dynsec.initial_config({"api": "cloud"}, ["SX-1"])
    for role in saved["roles"]:
        if role["rolename"] == "t:SX-1":
            role["acls"] = [a for a in role["acls"] if not a["topic"].endswith("/ack")]
    assert "cuntong/v1/t/SX-1/ack" not in [t for _, t in _acls(saved, "t:SX-1")]
    config = dynsec.initial_config({"api": "cloud"}, [], saved)
    assert ("subscribePattern", "cuntong/v1/t/SX-1/ack") in _acls(config, "t:SX-1")
    assert ("publishClientSend", "cuntong/v1/t/+/ack") in _acls(config, "cloud")
