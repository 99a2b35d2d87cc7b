"""The one-call helpers the stack, the cloud and the agent use, on a real broker."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from common import procs
from common.topics import Channel, topic
from cuntong.servers.mosquitto import Broker
from provisioning import device, wiring
from provisioning.api import make_router
from tests.provisioning.conftest import SHAANXI, mqtt_client

pytestmark = pytest.mark.servers


async def test_stack_cloud_and_agent_wiring(db: None, tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    state = tmp_path / "state"
    port = procs.free_port()
    services = {"api": "cloud", "api-admin": "admin"}
    cfg, _files = wiring.secure_broker(state, port, now, services=services)
    broker = Broker(cfg, tmp_path / "mosquitto").start()
    try:
        # Enrolment gives the terminal its broker client and role over the control link.
        admin = wiring.broker_admin(state, "127.0.0.1", port, "api-admin")
        provisioner = wiring.cloud_provisioner(state, "127.0.0.1", port, now, admin=admin)
        await wiring.write_factory_claims(
            provisioner,
            "http://cloud",
            [("SX-00001", "ZN-E100", SHAANXI)],
            lambda tid: tmp_path / "agent" / tid,
            now,
        )
        claim_file = tmp_path / "agent" / "SX-00001" / "claim.json"
        assert stat.S_IMODE(claim_file.stat().st_mode) == 0o600
        claim = device.read_claim(claim_file)
        app = FastAPI()
        app.include_router(make_router(provisioner))
        identity = device.Identity(tmp_path / "agent" / "identity")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=claim.enrol_url) as http:
            assert await device.ensure_identity(http, identity, claim, now) is True
            assert await device.ensure_identity(http, identity, claim, now) is False

        api_ctx = wiring.service_tls_context(state, "api", now)
        cmd = topic("SX-00001", Channel.CMD, "ping")
        async with (
            mqtt_client(port, identity.ssl_context()) as agent,
            mqtt_client(port, api_ctx) as api,
        ):
            granted = await agent.subscribe("cuntong/v1/t/SX-00001/cmd/#", qos=1)
            assert [int(getattr(c, "value", c)) for c in granted] == [1]
            await api.publish(cmd, b"ping", qos=1)
            async with asyncio.timeout(5):
                message = await anext(aiter(agent.messages))
            assert str(message.topic) == cmd
        # The service certificate is kept and reused until renewal is due.
        before = (state / "services" / "api" / "cert.pem").read_bytes()
        wiring.service_tls_context(state, "api", now)
        assert (state / "services" / "api" / "cert.pem").read_bytes() == before
    finally:
        broker.stop()
