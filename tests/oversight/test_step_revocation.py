"""A step result signed with a revoked certificate is refused at receipt, by name, and
audited — on the secured app (its own CA under ``state_dir``), with the terminal enrolled
through the enrolment API and revoked through the provisioning admin API, signing with the
agent's own code (``edge.steps.sign``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cloud.auth.models import AuditEntry
from cloud.oversight import Oversight
from cloud.workflow import service, steps
from cloud.workflow.engine import Actor
from cloud.workflow.errors import StepResultRefused
from common.settings import CloudSettings
from cuntong.app import create_app
from edge.steps.sign import sign_result
from firmware_adapters.idcard.simulator import sample_card
from provisioning import device
from tests.provisioning.conftest import enrol_request
from tests.steps_rig import id_reader

ADMIN = "operator-token-" + "x" * 24
TID = "SX-00031"
TELLER = Actor("alice", frozenset({"teller"}))


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[Oversight, httpx.AsyncClient]]:
    settings = CloudSettings(
        db_url=f"sqlite://{tmp_path / 'cloud.sqlite3'}",
        state_dir=tmp_path / "cloud",
        admin_token=ADMIN,
        ingest=False,
    )
    ov = Oversight.build(settings)
    app = create_app(settings, oversight=ov)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            yield ov, http


async def _enrolled(http: httpx.AsyncClient, tmp_path: Path) -> device.Identity:
    admin = {"authorization": f"Bearer {ADMIN}"}
    r = await http.post("/api/v1/provisioning/claims", json={"uses": 1, "days": 1}, headers=admin)
    assert r.status_code == 201, r.text
    identity = device.Identity(tmp_path / "terminal")
    await device.enrol(http, enrol_request(r.json()["token"], TID), identity)
    return identity


async def test_a_result_signed_by_a_revoked_terminal_is_refused_and_audited(
    secured: tuple[Oversight, httpx.AsyncClient], tmp_path: Path
) -> None:
    ov, http = secured
    identity = await _enrolled(http, tmp_path)
    key, cert_pem = identity.key(), identity.cert_path.read_text()
    serial = format(identity.certificate().serial_number, "x")
    now = dt.datetime.now(dt.UTC)
    await service.start(ov, "R-1", "pension", "alice", now)  # id_card_read, liveness
    # While enrolled, the terminal's signature is trusted (the cloud's own CA).
    _, request = await steps.ask(ov, "R-1", "id_card_read", TELLER, TID, now)
    async with id_reader(tmp_path, sample_card(0)) as read:
        done = await read(request)
    passed_read = sign_result(key, cert_pem, request, done, now)
    _, verified, _ = await steps.accept(ov, ov.device_issuers, TID, "R-1", passed_read, now)
    assert verified.signer == TID and verified.signer_serial == serial

    admin = {"authorization": f"Bearer {ADMIN}"}
    r = await http.post(f"/api/v1/provisioning/terminals/{TID}/revoke", headers=admin)
    assert r.status_code == 200, r.text

    later = dt.datetime.now(dt.UTC)
    await service.start(ov, "R-2", "pension", "alice", later)
    _, request = await steps.ask(ov, "R-2", "id_card_read", TELLER, TID, later)
    async with id_reader(tmp_path, sample_card(0)) as read:
        result = sign_result(key, cert_pem, request, await read(request), later)
    with pytest.raises(StepResultRefused, match=rf"revoked signer: .*{TID}.*serial {serial}"):
        await steps.accept(ov, ov.device_issuers, TID, "R-2", result, later)
    loaded = await service.get(ov, "R-2")
    assert loaded.workflow.next_step == "id_card_read"
    assert not [e for e in loaded.timeline.events if e.kind == "step_result"]
    entry = await AuditEntry.get(action="step_result_refused", target="R-2")
    assert entry.actor == f"terminal:{TID}" and "revoked signer" in entry.detail["reason"]
    assert entry.detail["step"] == "id_card_read"
