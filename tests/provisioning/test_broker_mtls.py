"""mTLS and per-terminal ACLs against a real Mosquitto child process."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from pathlib import Path

import aiomqtt
import pytest

from common.topics import Channel, topic
from provisioning import broker as broker_lib
from provisioning import ca as ca_lib
from tests.provisioning.conftest import MakeTerminal, MtlsBroker, mqtt_client, probe

pytestmark = pytest.mark.servers


NOT_AUTHORIZED = 0x87


def _codes(granted: object) -> list[int]:
    """SUBACK reason codes as numbers (aiomqtt returns ReasonCode objects for MQTT 5)."""
    return [int(getattr(code, "value", code)) for code in granted]  # type: ignore[attr-defined]


async def drain(c: aiomqtt.Client, seconds: float) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []

    async def loop() -> None:
        async for message in c.messages:
            got.append(message)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(loop(), seconds)
    return got


async def wait_for(c: aiomqtt.Client, wanted: str, seconds: float = 5) -> list[str]:
    """Topics received up to and including ``wanted``."""
    seen: list[str] = []

    async def loop() -> None:
        async for message in c.messages:
            seen.append(str(message.topic))
            if str(message.topic) == wanted:
                return

    await asyncio.wait_for(loop(), seconds)
    return seen


async def test_valid_terminal_connects_and_publishes(
    mtls_broker: MtlsBroker, make_terminal: MakeTerminal
) -> None:
    t = make_terminal("T0001")
    monitor = make_terminal("monitor", service=True)
    async with mqtt_client(mtls_broker.port, monitor.ctx) as mon:
        await mon.subscribe("cuntong/v1/t/#", qos=1)
        async with mqtt_client(mtls_broker.port, t.ctx) as c:
            await c.publish(topic("T0001", Channel.EVENT), b"card-inserted", qos=1)
        seen = await wait_for(mon, topic("T0001", Channel.EVENT))
    assert seen == [topic("T0001", Channel.EVENT)]


async def test_refused_without_valid_certificate(
    mtls_broker: MtlsBroker,
    make_terminal: MakeTerminal,
    ca: ca_lib.CertificateAuthority,
    tmp_path: Path,
    now: dt.datetime,
) -> None:
    port = mtls_broker.port
    assert await probe(port, make_terminal("T0002").ctx) == "connack:0"

    plain = await probe(port, None)  # no TLS at all
    assert plain.startswith("refused"), plain

    no_cert = ssl.create_default_context(cadata=ca.root_pem.decode())
    assert (await probe(port, no_cert)).startswith("refused"), "client without certificate"

    expired = make_terminal("T0003", issued_at=now - dt.timedelta(days=10), days=1)
    outcome = await probe(port, expired.ctx)
    assert outcome.startswith("refused") and "expired" in outcome, outcome

    foreign_ca = ca_lib.load_or_create(tmp_path / "foreign", now, org="other-bank")
    outcome = await probe(port, make_terminal("T0004", authority=foreign_ca).ctx)
    assert outcome.startswith("refused") and "unknown ca" in outcome, outcome

    # An impostor CA with our CA's very names: found by name, fails on the signature.
    impostor_ca = ca_lib.load_or_create(tmp_path / "impostor", now)
    outcome = await probe(port, make_terminal("T0004", authority=impostor_ca).ctx)
    assert outcome.startswith("refused") and "decrypt error" in outcome, outcome


async def test_revoked_certificate_refused_after_reload(
    mtls_broker: MtlsBroker,
    make_terminal: MakeTerminal,
    ca: ca_lib.CertificateAuthority,
    now: dt.datetime,
) -> None:
    revoked, kept = make_terminal("T0005"), make_terminal("T0006")
    assert await probe(mtls_broker.port, revoked.ctx) == "connack:0"
    mtls_broker.files.crlfile.write_bytes(ca.crl([(revoked.serial, now)], now))
    broker_lib.reload(mtls_broker.files.pidfile)
    for _ in range(50):  # mosquitto handles SIGHUP in its main loop, shortly after
        outcome = await probe(mtls_broker.port, revoked.ctx)
        if outcome.startswith("refused"):
            break
        await asyncio.sleep(0.05)
    assert "revoked" in outcome, outcome
    assert await probe(mtls_broker.port, kept.ctx) == "connack:0"


async def test_terminal_confined_to_its_own_subtree(
    mtls_broker: MtlsBroker, make_terminal: MakeTerminal
) -> None:
    a, b = make_terminal("TA"), make_terminal("TB")
    cloud, monitor = make_terminal("cloud", service=True), make_terminal("monitor", service=True)
    port = mtls_broker.port
    async with (
        mqtt_client(port, monitor.ctx) as mon,
        mqtt_client(port, a.ctx) as ca_,
        mqtt_client(port, b.ctx) as cb,
        mqtt_client(port, cloud.ctx) as cc,
    ):
        await mon.subscribe("cuntong/v1/t/#", qos=1)
        assert _codes(await cb.subscribe("cuntong/v1/t/TB/cmd/#", qos=1)) == [1]
        # A tries B's command subtree and everything: refused at SUBSCRIBE (0x87) by the
        # dynamic-security plugin, and nothing of B's is ever delivered.
        assert _codes(await ca_.subscribe("cuntong/v1/t/TB/cmd/#", qos=1)) == [NOT_AUTHORIZED]
        assert _codes(await ca_.subscribe("cuntong/v1/t/#", qos=1)) == [NOT_AUTHORIZED]
        # A publishes into B's subtree and a command to itself: both must be dropped.
        await ca_.publish(topic("TB", Channel.EVENT), b"forged", qos=1)
        await ca_.publish(topic("TA", Channel.CMD, "reboot"), b"self-command", qos=1)
        await ca_.publish(topic("TA", Channel.EVENT), b"own", qos=1)
        seen = await wait_for(mon, topic("TA", Channel.EVENT))
        assert seen == [topic("TA", Channel.EVENT)]

        await cc.publish(topic("TB", Channel.CMD, "reboot"), b"for B", qos=1)
        got_b = await wait_for(cb, topic("TB", Channel.CMD, "reboot"))
        assert got_b == [topic("TB", Channel.CMD, "reboot")]
        assert await drain(ca_, 0.5) == []


async def test_client_id_cannot_take_over_another_terminal(
    mtls_broker: MtlsBroker, make_terminal: MakeTerminal
) -> None:
    a, b = make_terminal("TC"), make_terminal("TD")
    cloud = make_terminal("cloud", service=True)
    port = mtls_broker.port
    async with mqtt_client(port, b.ctx, identifier="TD") as cb, mqtt_client(port, cloud.ctx) as cc:
        await cb.subscribe("cuntong/v1/t/TD/cmd/#", qos=1)
        # A claims B's client id; use_username_as_clientid replaces it with "TC".
        async with mqtt_client(port, a.ctx, identifier="TD"):
            await asyncio.sleep(0.2)
        await cc.publish(topic("TD", Channel.CMD, "ping"), b"still there?", qos=1)
        assert await wait_for(cb, topic("TD", Channel.CMD, "ping")) == [
            topic("TD", Channel.CMD, "ping")
        ]


async def test_services_have_only_their_role(
    mtls_broker: MtlsBroker, make_terminal: MakeTerminal
) -> None:
    t = make_terminal("TE")
    cloud, monitor = make_terminal("cloud", service=True), make_terminal("monitor", service=True)
    port = mtls_broker.port
    async with (
        mqtt_client(port, t.ctx) as term,
        mqtt_client(port, cloud.ctx) as cc,
        mqtt_client(port, monitor.ctx) as mon,
    ):
        await term.subscribe("cuntong/v1/t/TE/cmd/#", qos=1)
        await mon.subscribe("cuntong/v1/t/#", qos=1)
        # The cloud may command terminals but not forge their uplink; the monitor only reads.
        await cc.publish(topic("TE", Channel.EVENT), b"forged by cloud", qos=1)
        await mon.publish(topic("TE", Channel.CMD, "reboot"), b"from monitor", qos=1)
        await cc.publish(topic("TE", Channel.CMD, "ping"), b"from cloud", qos=1)
        got = await wait_for(term, topic("TE", Channel.CMD, "ping"))
        assert got == [topic("TE", Channel.CMD, "ping")]
        seen = await wait_for(mon, topic("TE", Channel.CMD, "ping"))
        assert seen == [topic("TE", Channel.CMD, "ping")]
