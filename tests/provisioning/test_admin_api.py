"""Operator HTTP routes and the CRL refresher."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from pathlib import Path

import httpx
from cryptography import x509
from fastapi import Depends, FastAPI, Header, HTTPException

from provisioning import ca as ca_lib
from provisioning import device
from provisioning.admin_api import make_admin_router
from provisioning.broker import BrokerFiles
from provisioning.revocation import RevocationPublisher, keep_crl_fresh
from tests.provisioning.conftest import Cloud, enrol_request


def require_admin(x_admin: str = Header("")) -> None:
    if x_admin != "yes":
        raise HTTPException(401)


async def test_admin_routes(cloud: Cloud, tmp_path: Path) -> None:
    app = FastAPI()
    app.include_router(make_admin_router(cloud.provisioner, [Depends(require_admin)], cloud.clock))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as ops:
        assert (await ops.get("/api/v1/provisioning/claims")).status_code == 401
        ops.headers["x-admin"] = "yes"
        created = await ops.post(
            "/api/v1/provisioning/claims",
            json={"uses": 3, "days": 7, "region_scope": ["陕西省"], "label": "batch-7"},
        )
        assert created.status_code == 201, created.text
        token = created.json()["token"]
        listed = (await ops.get("/api/v1/provisioning/claims")).json()
        assert [c["label"] for c in listed] == ["batch-7"] and "token" not in listed[0]

        await device.enrol(cloud.http, enrol_request(token, "SX-7"), device.Identity(tmp_path))
        terminals = (await ops.get("/api/v1/provisioning/terminals?status=active")).json()
        assert [(t["id"], t["village"]) for t in terminals] == [("SX-7", "子午街道")]

        revoked = await ops.post("/api/v1/provisioning/terminals/SX-7/revoke")
        assert revoked.json() == {"revoked_certificates": 1}
        assert (await ops.get("/api/v1/provisioning/terminals?status=active")).json() == []
        missing = await ops.post("/api/v1/provisioning/terminals/NOPE/decommission")
        assert missing.status_code == 404
        bad = await ops.post("/api/v1/provisioning/terminals/SX-7/delete")
        assert bad.status_code == 422

        claim_id = created.json()["id"]
        assert (await ops.post(f"/api/v1/provisioning/claims/{claim_id}/revoke")).status_code == 204
        assert (await ops.post(f"/api/v1/provisioning/claims/{claim_id}/revoke")).status_code == 404


async def test_crl_is_republished_on_a_timer(
    db: None, ca: ca_lib.CertificateAuthority, tmp_path: Path
) -> None:
    files = BrokerFiles(tmp_path / "broker-tls")  # no broker running: write only
    publisher = RevocationPublisher(ca, files, "127.0.0.1", 1)
    clock_values = iter(
        dt.datetime(2026, 5, 1, tzinfo=dt.UTC) + dt.timedelta(hours=12 * h) for h in range(100)
    )
    stop = asyncio.Event()
    seen: set[dt.datetime] = set()

    async def watch() -> None:
        while len(seen) < 3:
            if files.crlfile.exists():
                crl = x509.load_pem_x509_crl(files.crlfile.read_bytes())
                seen.add(crl.last_update_utc)
            await asyncio.sleep(0.01)
        stop.set()

    await asyncio.wait_for(
        asyncio.gather(keep_crl_fresh(publisher, lambda: next(clock_values), stop, 0.05), watch()),
        10,
    )
    assert len(seen) >= 3
    # Checked every 12 h, rewritten (and the broker reloaded) only past half its 7 days:
    # an unchanged, fresh CRL is left alone.
    issued = sorted(seen)
    assert all(b - a >= dt.timedelta(days=3.5) for a, b in itertools.pairwise(issued))
