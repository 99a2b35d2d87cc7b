"""A session's workflow over HTTP: steps in order, second person, evidence, QA queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.evidence.models import EvidenceRecord
from cloud.evidence.verify import verify
from cloud.quality.models import ReviewItem
from cloud.workflow import service, steps, store
from cloud.workflow.engine import Actor
from cloud.workflow.models import WorkflowState
from firmware_adapters.idcard.simulator import sample_card
from provisioning import ca as ca_lib
from tests.oversight.conftest import Cloud
from tests.steps_rig import enrol, id_reader

CUSTOMER = {"name": "王美娜", "id_number": "610102199001011234"}


async def _step(client, session: str, step: str, **body: object):  # type: ignore[no-untyped-def]
    return await client.post(f"/api/v1/workflow/{session}/steps", json={"step": step, **body})


async def _override(sup, session: str, step: str):  # type: ignore[no-untyped-def]
    """A supervisor passes a device step (these tests are about the workflow and its
    evidence; signed device results are ``test_device_steps.py``'s subject)."""
    r = await sup.post(
        f"/api/v1/workflow/{session}/steps/{step}/override", json={"reason": "device test rig"}
    )
    assert r.status_code == 200, r.text
    return r


async def test_high_risk_session_needs_supervisor_then_seals_evidence(
    cloud: Cloud, tmp_path: Path, terminal_ca: ca_lib.CertificateAuthority
) -> None:
    alice = await cloud.client("alice", "teller")
    bob = await cloud.client("bob", "teller")
    sup = await cloud.client("sup", "supervisor")
    rev = await cloud.client("rev", "reviewer")
    started = await alice.post("/api/v1/workflow/S-1/start", json={"business": "card_loss"})
    assert started.status_code == 201 and started.json()["next_step"] == "dual_recording"
    assert (
        await alice.post("/api/v1/workflow/S-1/start", json={"business": "card_loss"})
    ).status_code == 409
    assert (
        await alice.post("/api/v1/workflow/S-2/start", json={"business": "nope"})
    ).status_code == 422

    skipped = await _step(alice, "S-1", "e_signature")
    assert skipped.status_code == 409 and "next step is 'dual_recording'" in skipped.text
    assert (await _step(bob, "S-1", "dual_recording")).status_code == 404  # not bob's session
    assert (await _step(alice, "S-1", "dual_recording")).status_code == 200
    # The ID read: the terminal's signed result, read over the serial simulator.
    terminal = enrol(terminal_ca, "SX-00001", cloud.clock())
    teller = Actor("alice", frozenset({"teller"}))
    _, request = await steps.ask(cloud.ov, "S-1", "id_card_read", teller, "SX-00001", cloud.clock())
    async with id_reader(tmp_path, sample_card(0)) as handler:
        result = terminal.sign(request, await handler(request), cloud.clock())
    await steps.accept(cloud.ov, cloud.ov.device_issuers, "SX-00001", "S-1", result, cloud.clock())
    for step in ("id_online_check", "face_match"):
        assert (await _step(rev, "S-1", step)).status_code == 403  # nobody marks these done
        await _override(sup, "S-1", step)
    await _override(sup, "S-1", "liveness")
    await _override(sup, "S-1", "e_signature")

    early = await alice.post("/api/v1/workflow/S-1/finish", json={"customer": CUSTOMER})
    assert early.status_code == 409 and "supervisor_authorisation" in early.text
    assert (await _step(alice, "S-1", "supervisor_authorisation")).status_code == 403
    assert (await _step(rev, "S-1", "supervisor_authorisation")).status_code == 403
    assert (await _step(sup, "S-1", "supervisor_authorisation")).status_code == 200
    assert (await sup.post("/api/v1/workflow/S-1/finish", json={})).status_code == 403
    done = await alice.post("/api/v1/workflow/S-1/finish", json={"customer": CUSTOMER})
    assert done.status_code == 200 and done.json()["outcome"] == "completed"
    again = await alice.post("/api/v1/workflow/S-1/finish", json={"outcome": "rejected"})
    assert again.status_code == 409

    # The ID number went onto the timeline masked, and the package verifies.
    state = await WorkflowState.get(session_id="S-1")
    read = next(e for e in state.events if e["kind"] == "step_result")
    assert read["data"]["masked"]["id_number"] == result.masked["id_number"]
    assert result.masked["id_number"].startswith("6101**********")
    record = await EvidenceRecord.get(session_id="S-1")
    assert (record.operator_id, record.supervisor_id) == ("alice", "sup")
    trusted = [cloud.ov.evidence_keys.seal.public_key(), cloud.ov.evidence_keys.tsa.public_key()]
    report = verify(Path(record.package_dir), trusted)
    assert report.ok and report.events == len(state.events)
    # No core configured here: the timeline says the card_loss was not posted.
    assert [e["data"] for e in state.events if e["kind"] == "core_not_posted"] == [
        {"reason": "no core configured"}
    ]
    # A supervisor's override sends the whole session to full manual quality review.
    assert (await ReviewItem.get(session_id="S-1")).reason == "supervisor_override"
    assert (await alice.get("/api/v1/evidence/S-1")).json()["customer"][
        "id_number"
    ] == "6101**********1234"


async def test_racing_writers_cannot_both_append(cloud: Cloud) -> None:
    ov = cloud.ov
    await service.start(ov, "S-9", "pension", "alice", cloud.clock())
    first = await store.load(ov.catalogue, ov.suite, "S-9")
    second = await store.load(ov.catalogue, ov.suite, "S-9")
    assert first is not None and second is not None
    first.timeline.append("note", "alice", cloud.clock(), {"n": 1})
    second.timeline.append("note", "alice", cloud.clock(), {"n": 2})
    await store.save(first)
    with pytest.raises(store.StaleWorkflow):
        await store.save(second)
    reloaded = await store.load(ov.catalogue, ov.suite, "S-9")
    assert reloaded is not None and [e.data for e in reloaded.timeline.events][1:] == [{"n": 1}]


async def test_rejected_session_is_sealed_once(cloud: Cloud) -> None:
    alice = await cloud.client("alice", "teller")
    await alice.post("/api/v1/workflow/S-3/start", json={"business": "balance_inquiry"})
    bad = await _step(alice, "S-3", "id_card_read", passed=False, detail={"step": "forged"})
    assert bad.json()["outcome"] == "rejected"
    state = await WorkflowState.get(session_id="S-3")
    assert state.events[-1]["data"]["step"] == "id_card_read"  # detail cannot rename a step
    sealed = await alice.post("/api/v1/workflow/S-3/finish", json={"outcome": "rejected"})
    assert sealed.status_code == 200
    assert (await EvidenceRecord.get(session_id="S-3")).outcome == "rejected"
    twice = await alice.post("/api/v1/workflow/S-3/finish", json={"outcome": "rejected"})
    assert twice.status_code == 409 and "already finished" in twice.text


async def test_captured_files_are_sealed_into_the_package(cloud: Cloud) -> None:
    alice = await cloud.client("alice", "teller")
    sup = await cloud.client("sup", "supervisor")
    bob = await cloud.client("bob", "teller")
    await alice.post("/api/v1/workflow/S-4/start", json={"business": "cash_deposit"})
    url = "/api/v1/workflow/S-4/files"
    photo = b"\xff\xd8 voucher photo"
    assert (await alice.put(f"{url}/voucher-1.jpg?role=voucher", content=photo)).status_code == 200
    assert (await alice.put(f"{url}/voucher-1.jpg?role=voucher", content=b"x")).status_code == 409
    assert (await alice.put(f"{url}/x.bin?role=selfie", content=b"x")).status_code == 422
    assert (await bob.put(f"{url}/sig.png?role=e_signature", content=b"x")).status_code == 404
    staged = cloud.ov.evidence_dir / ".staging" / "S-4" / "voucher-1.jpg"
    assert photo not in staged.read_bytes()  # sealed at rest from the moment of capture
    assert (
        await alice.put(f"{url}/sig.png?role=e_signature", content=b"PNG sig")
    ).status_code == 200
    for step in ("card_read", "voucher_capture", "e_signature"):
        await _override(sup, "S-4", step)
    done = await alice.post("/api/v1/workflow/S-4/finish", json={})
    assert done.status_code == 200, done.text
    record = await EvidenceRecord.get(session_id="S-4")
    keys = cloud.ov.evidence_keys
    report = verify(Path(record.package_dir), [keys.seal.public_key(), keys.tsa.public_key()],
                    keys.data_master, cloud.ov.catalogue)  # fmt: skip
    assert report.ok and report.files == 2
    assert not staged.parent.exists()


async def test_file_altered_in_staging_stops_the_seal(cloud: Cloud) -> None:
    alice = await cloud.client("alice", "teller")
    sup = await cloud.client("sup", "supervisor")
    await alice.post("/api/v1/workflow/S-5/start", json={"business": "loan_repayment"})
    await alice.put("/api/v1/workflow/S-5/files/sig.png?role=e_signature", content=b"sig")
    staged = cloud.ov.evidence_dir / ".staging" / "S-5" / "sig.png"
    blob = bytearray(staged.read_bytes())
    blob[-1] ^= 1
    staged.write_bytes(bytes(blob))
    for step in ("card_read", "pin_entry", "e_signature"):
        await _override(sup, "S-5", step)
    refused = await alice.post("/api/v1/workflow/S-5/finish", json={})
    assert refused.status_code == 409 and "sig.png is missing or was altered" in refused.text
    assert not await EvidenceRecord.exists(session_id="S-5")
