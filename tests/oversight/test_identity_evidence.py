"""The sealed evidence package proves who the customer is, and ``cuntong evidence verify``
checks that proof offline: every terminal's signed step result against the terminals' CA,
its nonce/session/step binding and the certificate's revocation, the supervisors'
overrides, and the call recording's SHA-256.

Sessions run in the real app (SQLite and PostgreSQL); the results are signed by the
terminal's own code (``edge.steps``; the ID read over the serial simulator, the liveness
verdict from ``edge.vision.verdict.decide``). The tampering tests re-seal with the cloud's
own seal key — an insider's forgery — so only the terminals' signatures can catch it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.evidence import chain, identity, tsa
from cloud.evidence.canonical import canonical
from cloud.evidence.identity import certificate_pem, fingerprint
from cloud.evidence.keys import EvidenceKeys, public_pem
from cloud.evidence.service import add_recording
from cloud.evidence.verify import Report, verify
from cloud.sessions.models import TellerSession
from cloud.workflow import steps
from cloud.workflow.engine import Actor
from common import suite as suite_lib
from common.wire.call import (
    StepRequest,
    StepResult,
    before_queue_session,
    new_request_id,
    signing_input_v1,
)
from firmware_adapters.idcard.simulator import sample_card
from provisioning import ca as ca_lib
from tests.oversight.conftest import Cloud
from tests.steps_rig import Terminal, agent_verdict, enrol, id_reader

TID = "SX-00001"
TELLER = Actor("alice", frozenset({"teller"}))
CARD = sample_card(0)


@pytest.fixture
def terminal(cloud: Cloud, terminal_ca: ca_lib.CertificateAuthority) -> Terminal:
    return enrol(terminal_ca, TID, cloud.clock())


async def _pension_session(
    cloud: Cloud, tmp_path: Path, terminal: Terminal, session: str, override_liveness: bool
) -> list[StepResult]:
    """A pension check (id_card_read, liveness) finished through the teller's API."""
    teller = await cloud.client(f"t-{session}", "teller")
    actor = Actor(f"t-{session}", frozenset({"teller"}))
    r = await teller.post(f"/api/v1/workflow/{session}/start", json={"business": "pension"})
    assert r.status_code == 201, r.text
    now = cloud.clock()
    _, request = await steps.ask(cloud.ov, session, "id_card_read", actor, TID, now)
    async with id_reader(tmp_path, CARD) as read:
        results = [terminal.sign(request, await read(request), now)]
    await steps.accept(cloud.ov, cloud.ov.device_issuers, TID, session, results[0], now)
    cloud.clock.advance(seconds=20)
    if override_liveness:
        sup = await cloud.client(f"sup-{session}", "supervisor")
        r = await sup.post(
            f"/api/v1/workflow/{session}/steps/liveness/override",
            json={"reason": "终端摄像头故障，主管视频核对"},
        )
        assert r.status_code == 200, r.text
    else:
        now = cloud.clock()
        _, request = await steps.ask(cloud.ov, session, "liveness", actor, TID, now)
        results.append(terminal.sign(request, agent_verdict(0.93, "pension"), now))
        _, _, passed = await steps.accept(
            cloud.ov, cloud.ov.device_issuers, TID, session, results[-1], now
        )
        assert passed
    cloud.clock.advance(seconds=20)
    r = await teller.post(f"/api/v1/workflow/{session}/finish", json={})
    assert r.status_code == 200 and r.json()["outcome"] == "completed", r.text
    return results


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def _check(cloud: Cloud, pkg: Path, ca: ca_lib.CertificateAuthority, **kw: Any) -> Report:
    keys = cloud.ov.evidence_keys
    trusted = [keys.seal.public_key(), keys.tsa.public_key()]
    return verify(pkg, trusted, device_ca=[ca.issuing], catalogue=cloud.ov.catalogue, **kw)


def _reseal(pkg: Path, keys: EvidenceKeys, change: Callable[[list[dict[str, Any]]], None]) -> None:
    """An insider with the cloud's seal key rewrites the events, re-chains and re-seals."""
    path = pkg / "package.json"
    doc = json.loads(path.read_text())
    manifest = doc["manifest"]
    suite = suite_lib.Suite(manifest["suite"])
    events = manifest["events"]
    change(events)
    prev = chain.GENESIS
    for seq, event in enumerate(events):
        event["seq"], event["prev"] = seq, prev
        body = {k: event[k] for k in ("seq", "at", "kind", "actor", "data", "prev")}
        event["hash"] = prev = chain.event_hash(suite, body)
    manifest["chain_head"] = prev
    signature = keys.seal.sign(canonical(manifest))
    doc["seal"]["signature"] = signature.hex()
    imprint = suite_lib.digest(suite, signature).hex()
    now = dt.datetime.fromisoformat(manifest["created_at"])
    doc["timestamp"] = tsa.stamp(keys.tsa, suite.value, imprint, 2, now)
    path.write_text(json.dumps(doc))


def _results(events: list[dict[str, Any]], step: str) -> dict[str, Any]:
    return next(e for e in events if e["kind"] == "step_result" and e["data"]["step"] == step)


async def test_a_sealed_session_carries_and_proves_its_signed_steps(
    cloud: Cloud, tmp_path: Path, terminal: Terminal, terminal_ca: ca_lib.CertificateAuthority
) -> None:
    results = await _pension_session(cloud, tmp_path, terminal, "E-1", override_liveness=False)
    pkg = cloud.ov.evidence_dir / "E-1"
    manifest = json.loads((pkg / "package.json").read_text())["manifest"]
    kept = _results(manifest["events"], "id_card_read")["data"]
    # Exactly what the terminal signed, with who signed it; the full ID data only sealed.
    leaf = identity.load_certificates([terminal.certificate_pem])[0]
    assert kept["signature"] == results[0].signature
    assert kept["signed_time"] == results[0].time
    assert kept["signed"] == base64.b64encode(results[0].signing_input()).decode()
    assert kept["signer_serial"] == format(leaf.serial_number, "x")
    assert kept["signer_fingerprint"] == fingerprint(leaf)
    assert CARD.text.id_number not in json.dumps(manifest, ensure_ascii=False)
    assert manifest["identity"]["device_ca"] == [certificate_pem(terminal_ca.issuing)]
    assert manifest["identity"]["revoked"] == [] and manifest["identity"]["recording"] is None

    report = _check(cloud, pkg, terminal_ca)
    assert report.ok, report.problems
    assert [s["step"] for s in report.signed_steps] == ["id_card_read", "liveness"]
    assert {s["fingerprint"] for s in report.signed_steps} == {fingerprint(leaf)}
    assert report.overrides == []

    # The command a user runs, with the CA and seal keys as files.
    (tmp_path / "ca.pem").write_text(certificate_pem(terminal_ca.issuing))
    keys = cloud.ov.evidence_keys
    (tmp_path / "seal.pem").write_text(public_pem(keys.seal.public_key()))
    (tmp_path / "tsa.pem").write_text(public_pem(keys.tsa.public_key()))
    base = [sys.executable, "-m", "cuntong", "evidence", "verify", str(pkg)]
    trust = ["--trust", str(tmp_path / "seal.pem"), "--trust", str(tmp_path / "tsa.pem")]
    ca_arg = ["--device-ca", str(tmp_path / "ca.pem")]
    run = await asyncio.to_thread(_cli, [*base, *trust, *ca_arg])  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("INTACT") and f"id_card_read signed by {TID}" in run.stdout

    # Revoked after the results were signed: they stay good. Revoked before: named.
    signed_at = dt.datetime.fromisoformat(kept["signed_time"])
    later = terminal_ca.crl([(leaf.serial_number, signed_at + dt.timedelta(hours=1))], signed_at)
    assert _check(cloud, pkg, terminal_ca, crl=later).ok
    before = signed_at - dt.timedelta(hours=1)
    (tmp_path / "crl.pem").write_bytes(terminal_ca.crl([(leaf.serial_number, before)], signed_at))
    revoked = _check(cloud, pkg, terminal_ca, crl=(tmp_path / "crl.pem").read_bytes())
    assert not revoked.ok
    assert any(
        p.startswith("step id_card_read") and "revoked signer" in p for p in revoked.problems
    )
    assert any(p.startswith("step liveness") and "revoked signer" in p for p in revoked.problems)
    crl_arg = ["--crl", str(tmp_path / "crl.pem")]
    run = await asyncio.to_thread(_cli, [*base, *trust, *ca_arg, *crl_arg])
    assert run.returncode == 1 and run.stdout.startswith("ALTERED")
    assert "✗ step id_card_read" in run.stdout and "revoked signer" in run.stdout
    # A CRL the terminals' CA did not sign proves nothing and is refused.
    foreign = ca_lib.load_or_create(tmp_path / "foreign", signed_at)
    bogus = foreign.crl([(leaf.serial_number, before)], signed_at)
    assert any("CRL not usable" in p for p in _check(cloud, pkg, terminal_ca, crl=bogus).problems)


async def test_forged_step_results_are_named_even_when_resealed(
    cloud: Cloud, tmp_path: Path, terminal: Terminal, terminal_ca: ca_lib.CertificateAuthority
) -> None:
    results = await _pension_session(cloud, tmp_path, terminal, "E-2", override_liveness=False)
    sealed = cloud.ov.evidence_dir / "E-2"
    keys = cloud.ov.evidence_keys

    def forged(name: str, change: Callable[[list[dict[str, Any]]], None]) -> Report:
        pkg = tmp_path / name
        shutil.copytree(sealed, pkg)
        _reseal(pkg, keys, change)
        report = _check(cloud, pkg, terminal_ca)
        assert not any(p.startswith(("seal", "timestamp", "event")) for p in report.problems)
        return report

    # A tampered result: another digest (as if the terminal had read another card).
    def digest(events: list[dict[str, Any]]) -> None:
        _results(events, "id_card_read")["data"]["digest"] = "0" * 64

    events = json.loads((sealed / "package.json").read_text())["manifest"]["events"]
    seq = _results(events, "id_card_read")["seq"]
    problems = forged("digest", digest).problems
    assert problems[0] == (
        f"step id_card_read (event {seq}): the signed bytes do not bind this session, step, "
        "nonce, time, digest, outcome and masked data"
    )
    # ...and the step it passed is no longer backed by a verified result.
    assert all(p.startswith("step id_card_read") for p in problems)

    # The same result with the signed bytes rewritten too: the signature no longer fits.
    def rebound(events: list[dict[str, Any]]) -> None:
        data = _results(events, "id_card_read")["data"]
        data["digest"] = "0" * 64
        data["signed"] = base64.b64encode(
            results[0].signing_input().replace(results[0].digest.encode(), b"0" * 64)
        ).decode()

    assert any(
        p.startswith("step id_card_read") and "signature does not verify" in p
        for p in forged("rebound", rebound).problems
    )

    # The kept masked data or score edited (a better liveness score, another name): the
    # terminal's signature covers them, so the edit is named at that result.
    def masked(events: list[dict[str, Any]]) -> None:
        _results(events, "liveness")["data"]["masked"]["score"] = 99

    assert any(
        p.startswith("step liveness") and "do not bind" in p
        for p in forged("masked", masked).problems
    )

    # The terminal said "failed"; the kept result and its signed bytes say so (a genuine
    # signature), but the step was recorded as passed: named, since only a result signed
    # as passed can pass a device step.
    def failed_but_passed(events: list[dict[str, Any]]) -> None:
        request = StepRequest("E-2", "liveness", results[1].nonce, {})
        said = terminal.sign(request, agent_verdict(0.2, "pension"), results[1].at)
        assert said.outcome == "failed"
        data = _results(events, "liveness")["data"]
        data.update(
            outcome=said.outcome, reason=said.reason, masked=said.masked, digest=said.digest,
            signature=said.signature, signed_time=said.time,
            signed=base64.b64encode(said.signing_input()).decode(),
        )  # fmt: skip

    assert any(
        p.startswith("step liveness") and "passed on a result the terminal signed as 'failed'" in p
        for p in forged("failed", failed_but_passed).problems
    )

    # A package sealed before v2: the terminal signed the first format (no outcome, reason
    # or masked data). It still verifies as it was signed, with a warning saying so.
    def first_format(events: list[dict[str, Any]]) -> None:
        data = _results(events, "liveness")["data"]
        v1 = signing_input_v1("E-2", "liveness", data["nonce"], data["signed_time"],
                              data["digest"])  # fmt: skip
        signature = terminal.key.sign(v1, ec.ECDSA(hashes.SHA256()))
        data.update(signed=base64.b64encode(v1).decode(),
                    signature=base64.b64encode(signature).decode())  # fmt: skip

    old = forged("v1", first_format)
    assert not any(p.startswith("step liveness") for p in old.problems), old.problems
    assert any("liveness" in w and "v1 format" in w for w in old.warnings), old.warnings

    # A wrong signer: another enrolled terminal signs the same liveness verdict.
    other = enrol(terminal_ca, "SX-00002", cloud.clock())
    request_nonce = results[1].nonce

    def wrong_signer(events: list[dict[str, Any]]) -> None:
        request = StepRequest("E-2", "liveness", request_nonce, {})
        fake = other.sign(request, agent_verdict(0.93, "pension"), results[1].at)
        data = _results(events, "liveness")["data"]
        data.update(
            signature=fake.signature, certificate=fake.certificate, signed_time=fake.time,
            digest=fake.digest, signer_serial=None, signer_fingerprint=None,
            signed=base64.b64encode(fake.signing_input()).decode(),
        )  # fmt: skip

    assert any(
        p.startswith("step liveness") and "signed by terminal 'SX-00002'" in p
        for p in forged("signer", wrong_signer).problems
    )

    # A forged step: the terminal's result removed, the step left passed.
    def missing(events: list[dict[str, Any]]) -> None:
        events.remove(_results(events, "liveness"))

    assert any(
        p.startswith("step liveness") and "without a verified terminal result" in p
        for p in forged("missing", missing).problems
    )


async def test_overrides_and_the_recording_are_in_the_package(
    cloud: Cloud, tmp_path: Path, terminal: Terminal, terminal_ca: ca_lib.CertificateAuthority
) -> None:
    # Recording archived before the teller finishes: its SHA-256 is in the sealed manifest.
    recording = tmp_path / "E-3.mkv"
    recording.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 64)
    sha = hashlib.sha256(recording.read_bytes()).hexdigest()
    now = cloud.clock()
    await TellerSession.create(
        id="E-3", terminal_id=TID, business="pension", language="zh", state="ended",
        requested_at=now, updated_at=now, recording_path=str(recording), recording_sha256=sha,
    )  # fmt: skip
    await _pension_session(cloud, tmp_path, terminal, "E-3", override_liveness=True)
    pkg = cloud.ov.evidence_dir / "E-3"
    manifest = json.loads((pkg / "package.json").read_text())["manifest"]
    assert manifest["identity"]["recording"] == {"reference": str(recording), "sha256": sha}
    report = _check(cloud, pkg, terminal_ca, recording=recording)
    assert report.ok, report.problems
    assert report.recording == {"reference": str(recording), "sha256": sha}
    [override] = report.overrides
    assert override["step"] == "liveness" and override["by"] == "sup-E-3"
    assert override["reason"] == "终端摄像头故障，主管视频核对"
    recording.write_bytes(recording.read_bytes() + b"x")
    assert any("does not match the sealed SHA-256" in p for p in _check(
        cloud, pkg, terminal_ca, recording=recording).problems)  # fmt: skip


async def test_a_recording_archived_after_sealing_is_added_beside_the_package(
    cloud: Cloud, tmp_path: Path, terminal: Terminal, terminal_ca: ca_lib.CertificateAuthority
) -> None:
    await _pension_session(cloud, tmp_path, terminal, "E-4", override_liveness=False)
    pkg = cloud.ov.evidence_dir / "E-4"
    assert "recording: the package names no call recording" in _check(
        cloud, pkg, terminal_ca).warnings  # fmt: skip
    recording = tmp_path / "E-4.mkv"
    recording.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 32)
    sha = hashlib.sha256(recording.read_bytes()).hexdigest()
    assert await add_recording(cloud.ov, "E-4", str(recording), sha, cloud.clock())
    report = _check(cloud, pkg, terminal_ca, recording=recording)
    assert report.ok and report.recording is not None and report.recording["sha256"] == sha
    assert not report.warnings
    # The addendum is sealed: another SHA-256 written into it is caught.
    path = pkg / "recording.json"
    doc = json.loads(path.read_text())
    doc["recording"]["sha256"] = "f" * 64
    path.write_text(json.dumps(doc))
    assert any(
        "recording.json: seal invalid" in p for p in _check(cloud, pkg, terminal_ca).problems
    )


async def test_an_id_read_made_before_queueing_verifies_in_the_package(
    cloud: Cloud, tmp_path: Path, terminal: Terminal, terminal_ca: ca_lib.CertificateAuthority
) -> None:
    """先刷身份证: the read is signed for its request (session ``before-queue:<id>``), taken
    as the session's ``id_card_read``; the verifier binds it to that request."""
    teller = await cloud.client("t-E-5", "teller")
    actor = Actor("t-E-5", frozenset({"teller"}))
    r = await teller.post("/api/v1/workflow/E-5/start", json={"business": "pension"})
    assert r.status_code == 201, r.text
    now = cloud.clock()
    request_id = new_request_id()
    request = StepRequest(before_queue_session(request_id), "id_card_read", request_id, {})
    async with id_reader(tmp_path, CARD) as read:
        early = terminal.sign(request, await read(request), now)
    cloud.clock.advance(seconds=60)
    await steps.accept_before_queue(
        cloud.ov, cloud.ov.device_issuers, TID, "E-5", request_id, early, cloud.clock()
    )
    _, request = await steps.ask(cloud.ov, "E-5", "liveness", actor, TID, cloud.clock())
    verdict = terminal.sign(request, agent_verdict(0.93, "pension"), cloud.clock())
    await steps.accept(cloud.ov, cloud.ov.device_issuers, TID, "E-5", verdict, cloud.clock())
    r = await teller.post("/api/v1/workflow/E-5/finish", json={})
    assert r.status_code == 200 and r.json()["outcome"] == "completed", r.text
    report = _check(cloud, cloud.ov.evidence_dir / "E-5", terminal_ca)
    assert report.ok, report.problems
    assert [s["step"] for s in report.signed_steps] == ["id_card_read", "liveness"]
