"""Certificate rotation without downtime; revocation that refuses and disconnects."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import aiomqtt
import pytest

from common.topics import Channel, topic
from provisioning import device
from provisioning.errors import EnrolmentRefused
from provisioning.protocol import RenewalRequest
from tests.provisioning.conftest import Cloud, MakeTerminal, enrol_request, mqtt_client, probe

pytestmark = pytest.mark.servers


def mqtt(identity: device.Identity) -> aiomqtt.Client:
    return mqtt_client(identity.info()["broker"]["port"], identity.ssl_context())


async def enrolled(cloud: Cloud, tmp_path: Path, terminal_id: str) -> device.Identity:
    _, token = await cloud.provisioner.create_claim(
        cloud.clock.now, max_uses=1, valid_for=dt.timedelta(days=1)
    )
    identity = device.Identity(tmp_path / terminal_id)
    await device.enrol(cloud.http, enrol_request(token, terminal_id), identity)
    return identity


async def test_rotation_keeps_the_link_up(
    cloud_with_broker: Cloud, tmp_path: Path, make_terminal: MakeTerminal
) -> None:
    cloud = cloud_with_broker
    assert cloud.broker is not None
    # Enrolled 65 days ago (90-day certificate), so renewal is due now in real time, which
    # is the time the broker checks certificates against.
    real_now = cloud.clock.now
    cloud.clock.now = real_now - dt.timedelta(days=65)
    identity = await enrolled(cloud, tmp_path, "T-ROT")
    first = identity.certificate()
    monitor = make_terminal("monitor", service=True)
    uplink = topic("T-ROT", Channel.TELEMETRY)
    async with mqtt_client(cloud.broker.port, monitor.ctx) as mon:
        await mon.subscribe(uplink, qos=1)
        async with mqtt(identity) as link:
            await link.publish(uplink, b"before", qos=1)
            cloud.clock.now = real_now
            assert device.renewal_due(first, real_now)
            await device.renew(cloud.http, identity, cloud.clock.now)
            second = identity.certificate()
            assert second.serial_number != first.serial_number
            assert second.public_key() != first.public_key()  # a new key, too
            assert not device.renewal_due(second, cloud.clock.now)
            # The open link is untouched by the renewal...
            await link.publish(uplink, b"after", qos=1)
        # ...and the agent's next (re)connect presents the new certificate.
        assert identity.cert_path.resolve().parent.name == "gen-0002"
        async with mqtt(identity) as fresh:
            await fresh.publish(uplink, b"new-cert", qos=1)
        payloads = []
        async with asyncio.timeout(5):
            async for message in mon.messages:
                payloads.append(message.payload)
                if len(payloads) == 3:
                    break
    assert payloads == [b"before", b"after", b"new-cert"]


async def test_renewal_needs_proof_of_possession(cloud: Cloud, tmp_path: Path) -> None:
    identity = await enrolled(cloud, tmp_path, "T-POP")
    now = cloud.clock.now
    good = RenewalRequest(
        terminal_id="T-POP",
        certificate_pem=identity.cert_path.read_text(),
        csr_pem=device.new_csr(device.ca_lib.new_key(), "T-POP").decode(),
        signed_at=int(now.timestamp()),
        signature="00" * 70,
    )
    with pytest.raises(EnrolmentRefused) as refused:
        await cloud.provisioner.renew(good, now)
    assert refused.value.reason == "bad_signature"
    stolen = good.model_copy(update={"terminal_id": "T-OTHER"})
    with pytest.raises(EnrolmentRefused) as refused:
        await cloud.provisioner.renew(stolen, now)
    assert refused.value.reason == "bad_certificate"
    # A properly signed but stale request (replayed an hour later) is refused too.
    with pytest.raises(EnrolmentRefused) as refused:
        await device.renew(cloud.http, identity, now - dt.timedelta(hours=1))
    assert refused.value.reason == "stale_request"


async def test_revoked_terminal_is_disconnected_and_refused(
    cloud_with_broker: Cloud, tmp_path: Path
) -> None:
    cloud = cloud_with_broker
    assert cloud.broker is not None
    victim = await enrolled(cloud, tmp_path, "T-BAD")
    bystander = await enrolled(cloud, tmp_path, "T-OK")
    async with mqtt(victim) as link, mqtt(bystander) as other:
        await link.subscribe("cuntong/v1/t/T-BAD/cmd/#", qos=1)
        await cloud.provisioner.revoke_terminal("T-BAD", cloud.clock.now)
        # The open connection is dropped by the broker...
        with pytest.raises(aiomqtt.MqttError):
            async with asyncio.timeout(5):
                async for _ in link.messages:
                    pass
        # ...while other terminals stay connected.
        await other.publish(topic("T-OK", Channel.STATUS), b"online", qos=1)
    outcome = await probe(cloud.broker.port, victim.ssl_context())
    assert "revoked" in outcome, outcome
    assert await probe(cloud.broker.port, bystander.ssl_context()) == "connack:0"
    # Renewal is closed to it as well.
    with pytest.raises(EnrolmentRefused) as refused:
        await device.renew(cloud.http, victim, cloud.clock.now)
    assert refused.value.reason == "revoked"


async def test_decommissioned_terminal_is_refused(cloud_with_broker: Cloud, tmp_path: Path) -> None:
    cloud = cloud_with_broker
    assert cloud.broker is not None
    old = await enrolled(cloud, tmp_path, "T-OLD")
    await cloud.provisioner.decommission("T-OLD", cloud.clock.now)
    outcome = await probe(cloud.broker.port, old.ssl_context())
    assert "revoked" in outcome, outcome
