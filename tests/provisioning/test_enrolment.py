"""Enrolment by claim through the HTTP router, the terminal side, and the registry."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
from pathlib import Path

import aiomqtt
import httpx
import pytest
from cryptography import x509

from common.topics import Channel, topic
from provisioning import ca as ca_lib
from provisioning import device
from provisioning.errors import ClaimRefused, EnrolmentRefused
from provisioning.models import ProvCertificate, ProvClaim, ProvTerminal
from tests.provisioning.conftest import SHAANXI, Cloud, enrol_request


async def test_enrol_then_connect_and_publish(cloud_with_broker: Cloud, tmp_path: Path) -> None:
    cloud = cloud_with_broker
    _, token = await cloud.provisioner.create_claim(
        cloud.clock.now,
        max_uses=5,
        valid_for=dt.timedelta(days=30),
        hardware_model="ZN-E1",
        region_scope=("陕西省",),
    )
    sent: list[bytes] = []

    async def capture(request: httpx.Request) -> None:
        sent.append(request.content)

    cloud.http.event_hooks["request"].append(capture)
    identity = device.Identity(tmp_path / "T-SX-0001")
    answer = await device.enrol(cloud.http, enrol_request(token, "T-SX-0001"), identity)

    # Identity is the terminal id; the private key never left the terminal.
    cert = identity.certificate()
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "T-SX-0001"
    assert b"PRIVATE KEY" not in b"".join(sent) and b"BEGIN CERTIFICATE REQUEST" in sent[0]
    for path in (identity.key_path, identity.cert_path, identity.info_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert cloud.broker is not None and answer.broker.port == cloud.broker.port
    assert answer.config == {"telemetry_interval_s": 60, "village": "子午街道"}

    row = await ProvTerminal.get(id="T-SX-0001")
    assert (row.province, row.city, row.county, row.village) == (
        SHAANXI.province,
        SHAANXI.city,
        SHAANXI.county,
        SHAANXI.village,
    )
    assert row.hardware_model == "ZN-E1" and row.status == "active"
    assert await ProvCertificate.filter(terminal_id="T-SX-0001").count() == 1

    info = identity.info()
    async with aiomqtt.Client(
        info["broker"]["host"],
        info["broker"]["port"],
        tls_context=identity.ssl_context(),
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=5,
    ) as c:
        await c.publish(topic("T-SX-0001", Channel.STATUS), b"online", qos=1)


async def test_claim_count_limit(cloud: Cloud, tmp_path: Path) -> None:
    claim, token = await cloud.provisioner.create_claim(
        cloud.clock.now, max_uses=2, valid_for=dt.timedelta(days=1)
    )
    for tid in ("T1", "T2"):
        await device.enrol(cloud.http, enrol_request(token, tid), device.Identity(tmp_path / tid))
    with pytest.raises(ClaimRefused) as refused:
        await device.enrol(cloud.http, enrol_request(token, "T3"), device.Identity(tmp_path / "T3"))
    assert refused.value.reason == "exhausted"
    assert (await ProvClaim.get(id=claim.id)).uses == 2
    assert not await ProvTerminal.exists(id="T3")
    assert not (tmp_path / "T3" / "current").exists()


async def test_claim_expiry_revocation_and_scope(cloud: Cloud, tmp_path: Path) -> None:
    prov, now = cloud.provisioner, cloud.clock.now
    _, expiring = await prov.create_claim(now, max_uses=10, valid_for=dt.timedelta(hours=1))
    revoked, revoked_token = await prov.create_claim(now, max_uses=10, valid_for=dt.timedelta(1))
    _, hunan = await prov.create_claim(
        now, max_uses=10, valid_for=dt.timedelta(1), region_scope=("湖南省",)
    )
    _, other_model = await prov.create_claim(
        now, max_uses=10, valid_for=dt.timedelta(1), hardware_model="ZN-E2"
    )
    _, other_batch = await prov.create_claim(
        now, max_uses=10, valid_for=dt.timedelta(1), id_prefix="SX-B07-"
    )
    assert await prov.revoke_claim(revoked.id, now)

    async def reason(token: str) -> str:
        with pytest.raises(ClaimRefused) as refused:
            await device.enrol(cloud.http, enrol_request(token, "TX"), device.Identity(tmp_path))
        return refused.value.reason

    assert await reason(revoked_token) == "revoked"
    assert await reason(hunan) == "out_of_region"
    assert await reason(other_model) == "wrong_model"
    assert await reason(other_batch) == "wrong_id"
    assert await reason(expiring[:-3] + "xyz") == "unknown_claim"  # wrong secret
    assert await reason("ctk_0000000000000000.nope") == "unknown_claim"
    cloud.clock.now = now + dt.timedelta(hours=1, seconds=1)
    assert await reason(expiring) == "expired"
    assert await ProvClaim.filter(uses__gt=0).count() == 0


async def test_identity_cannot_be_claimed_twice(cloud: Cloud, tmp_path: Path) -> None:
    prov, now = cloud.provisioner, cloud.clock.now
    claim, token = await prov.create_claim(now, max_uses=5, valid_for=dt.timedelta(days=1))
    await device.enrol(cloud.http, enrol_request(token, "T9"), device.Identity(tmp_path / "a"))
    with pytest.raises(EnrolmentRefused) as refused:
        await device.enrol(cloud.http, enrol_request(token, "T9"), device.Identity(tmp_path / "b"))
    assert refused.value.reason == "terminal_exists"
    assert (await ProvClaim.get(id=claim.id)).uses == 1  # the refused attempt used nothing

    # Decommissioning frees the id: a refurbished unit may enrol under it again.
    await prov.decommission("T9", now)
    await device.enrol(cloud.http, enrol_request(token, "T9"), device.Identity(tmp_path / "c"))
    assert (await ProvTerminal.get(id="T9")).status == "active"


async def test_bad_csr_refused(cloud: Cloud) -> None:
    _, token = await cloud.provisioner.create_claim(
        cloud.clock.now, max_uses=1, valid_for=dt.timedelta(days=1)
    )
    body = enrol_request(token, "T5").model_dump()
    body["csr_pem"] = (
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    )
    response = await cloud.http.post("/api/v1/enrol", json=body)
    assert response.status_code == 400 and response.json()["detail"]["reason"] == "bad_csr"


def test_renewal_timing_is_a_function_of_validity(ca: ca_lib.CertificateAuthority) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    key = ca_lib.new_key()
    cert = ca.issue_device(device.new_csr(key, "T1"), "T1", now, days=90).cert
    due = device.renew_at(cert)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert cert.not_valid_before_utc + lifetime * 0.61 <= due
    assert due <= cert.not_valid_before_utc + lifetime * 0.72
    assert not device.renewal_due(cert, now + dt.timedelta(days=50))
    assert device.renewal_due(cert, now + dt.timedelta(days=66))
    assert device.renewal_due(cert, now + dt.timedelta(days=100))  # expired: renew (or re-enrol)


async def test_concurrent_enrolments_cannot_overspend_a_claim(cloud: Cloud, tmp_path: Path) -> None:
    claim, token = await cloud.provisioner.create_claim(
        cloud.clock.now, max_uses=3, valid_for=dt.timedelta(days=1)
    )

    async def attempt(i: int) -> str:
        try:
            await device.enrol(
                cloud.http, enrol_request(token, f"TC{i}"), device.Identity(tmp_path / str(i))
            )
        except ClaimRefused as err:
            return err.reason
        return "ok"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(10)))
    assert sorted(outcomes) == ["exhausted"] * 7 + ["ok"] * 3
    assert (await ProvClaim.get(id=claim.id)).uses == 3
    assert await ProvTerminal.all().count() == 3
