"""Janus and coturn as child processes: generated config, loopback only, auth enforced."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest
from aioice import stun
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint

from cloud.media.turn import turn_credentials
from cuntong.servers.coturn import Coturn, config_path
from cuntong.servers.janus import Janus, JanusConfig, config_files

INSTALLED = {
    "plugins": ["libjanus_echotest.so", "libjanus_sip.so", "libjanus_videoroom.so"],
    "transports": ["libjanus_http.so", "libjanus_websockets.so", "libjanus_mqtt.so"],
    "events": ["libjanus_sampleevh.so"],
    "loggers": ["libjanus_jsonlog.so"],
}


def test_config_keeps_only_videoroom_and_http() -> None:
    cfg = JanusConfig(8088, 7088, admin_secret="s3cret", room_admin_key="rk")
    files = config_files(cfg, Path("/x/etc"), INSTALLED)
    core = files["janus.jcfg"]
    assert 'disable = "libjanus_echotest.so,libjanus_sip.so"' in core
    assert 'disable = "libjanus_mqtt.so,libjanus_websockets.so"' in core
    assert 'disable = "libjanus_sampleevh.so"' in core
    assert 'admin_secret = "s3cret"' in core and "token_auth = true" in core
    http = files["janus.transport.http.jcfg"]
    assert 'ip = "127.0.0.1"' in http and 'admin_ip = "127.0.0.1"' in http
    assert "admin_port = 7088" in http and "port = 8088" in http
    assert 'admin_key = "rk"' in files["janus.plugin.videoroom.jcfg"]
    assert "event_loops" not in core  # Janus's own default: a thread per handle
    shared = config_files(JanusConfig(1, 2, event_loops=2), Path("/x/etc"), INSTALLED)
    assert "event_loops = 2" in shared["janus.jcfg"]
    # Generated secrets differ per instance and stay out of repr (logs).
    a, b = JanusConfig(1, 2), JanusConfig(1, 2)
    assert a.admin_secret != b.admin_secret and a.admin_secret not in repr(a)


def _listening(pid: int) -> set[tuple[str, int]]:
    proc = psutil.Process(pid)
    return {
        (c.laddr.ip, c.laddr.port)
        for c in proc.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


async def test_janus_runs_on_loopback_with_token_auth(janus: Janus) -> None:
    assert janus.proc is not None
    assert _listening(janus.proc.pid) == {
        ("127.0.0.1", janus.cfg.http_port),
        ("127.0.0.1", janus.cfg.admin_port),
    }
    async with httpx.AsyncClient() as http:
        info = (await http.post(janus.url, json={"janus": "info", "transaction": "i"})).json()
        assert info["version_string"] == "1.1.2"
        assert set(info["plugins"]) == {"janus.plugin.videoroom"}
        assert set(info["transports"]) == {"janus.transport.http"}
        refused = await http.post(janus.url, json={"janus": "create", "transaction": "c"})
        assert refused.json()["error"]["code"] == 403
        bad_admin = await http.post(
            janus.admin_url,
            json={"janus": "add_token", "token": "t", "transaction": "a", "admin_secret": "x"},
        )
        assert bad_admin.json()["janus"] == "error"
        await http.post(
            janus.admin_url,
            json={
                "janus": "add_token",
                "token": "t",
                "transaction": "a",
                "admin_secret": janus.cfg.admin_secret,
            },
        )
        ok = await http.post(janus.url, json={"janus": "create", "transaction": "c", "token": "t"})
        assert ok.json()["janus"] == "success"


def test_turn_credentials_match_the_rest_scheme() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    cred = turn_credentials("north-wind", "terminal-0042", now, timedelta(minutes=10))
    expiry = int(now.timestamp()) + 600
    assert cred.username == f"{expiry}:terminal-0042"
    mac = hmac.new(b"north-wind", cred.username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(cred.password) == mac
    assert cred.expires == now + timedelta(minutes=10)
    assert cred.ice_server(["turn:x"])["credential"] == cred.password
    with pytest.raises(ValueError):
        turn_credentials("s", "a:b", now)
    with pytest.raises(ValueError):
        turn_credentials("s", "a", datetime(2026, 1, 1))  # noqa: DTZ001


async def test_coturn_allocates_only_with_valid_unexpired_credentials(coturn: Coturn) -> None:
    server = ("127.0.0.1", coturn.cfg.port)
    secret = coturn.cfg.static_auth_secret
    now = datetime.now(UTC)
    good = turn_credentials(secret, "teller-1", now)
    transport, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol, server, good.username, good.password
    )
    try:
        relayed = transport.get_extra_info("sockname")
        assert relayed[0] == "127.0.0.1"
        assert coturn.cfg.relay_ports[0] <= relayed[1] <= coturn.cfg.relay_ports[1]
    finally:
        transport.close()
    expired = turn_credentials(secret, "teller-1", now - timedelta(hours=2))
    forged = turn_credentials("not-the-secret", "teller-1", now)
    for cred in (expired, forged):
        with pytest.raises(TransactionFailed, match="401"):
            await create_turn_endpoint(
                asyncio.DatagramProtocol, server, cred.username, cred.password
            )


async def test_coturn_refuses_private_peers_and_keeps_its_secret_private(coturn: Coturn) -> None:
    """A CreatePermission for 10.0.0.1 is refused (403) while the configured media node
    (127.0.0.1 here) is permitted. Only STUN messages to coturn on loopback are sent: the
    permission is asked for, no data is relayed, no packet leaves for a private address."""
    server = ("127.0.0.1", coturn.cfg.port)
    secret = coturn.cfg.static_auth_secret
    cred = turn_credentials(secret, "teller-1", datetime.now(UTC))
    transport, _ = await create_turn_endpoint(
        asyncio.DatagramProtocol, server, cred.username, cred.password
    )
    try:
        turn = transport._TurnTransport__inner_protocol  # type: ignore[attr-defined]

        def permission(ip: str) -> stun.Message:
            request = stun.Message(
                message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST
            )
            request.attributes["XOR-PEER-ADDRESS"] = (ip, 9)
            return request

        with pytest.raises(TransactionFailed, match="403"):
            await turn.request(permission("10.0.0.1"))
        response, _ = await turn.request(permission("127.0.0.1"))
        assert response.message_class == stun.Class.RESPONSE
    finally:
        transport.close()
    _secret_only_in_private_config(coturn)


def _secret_only_in_private_config(coturn: Coturn) -> None:
    assert coturn.proc is not None
    secret = coturn.cfg.static_auth_secret
    cmdline = Path(f"/proc/{coturn.proc.pid}/cmdline").read_bytes()
    assert secret.encode() not in cmdline
    conf = config_path(coturn.state_dir)
    assert secret in conf.read_text()
    assert conf.stat().st_mode & 0o777 == 0o600


def test_janus_configs_holding_secrets_are_owner_only(janus: Janus) -> None:
    folder = janus.state_dir / "etc"
    written = sorted(folder.glob("*.jcfg"))
    assert {p.name for p in written} >= {"janus.jcfg", "janus.plugin.videoroom.jcfg"}
    assert janus.cfg.admin_secret in (folder / "janus.jcfg").read_text()
    assert {p.name: p.stat().st_mode & 0o777 for p in written} == {p.name: 0o600 for p in written}
