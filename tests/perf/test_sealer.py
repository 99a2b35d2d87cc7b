"""Evidence sealing in a worker process: complete, verifiable, and all-or-nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.evidence.models import EvidenceRecord
from cloud.evidence.package import EvidenceFile
from cloud.evidence.sealer import SealerFailed
from cloud.workflow import engine, service
from cloud.workflow.models import WorkflowState
from tests.oversight.conftest import Cloud

SESSION = "P-1"


async def _ready_to_finish(cloud: Cloud) -> object:
    alice = await cloud.client("alice", "teller")
    url = f"/api/v1/workflow/{SESSION}"
    assert (await alice.post(f"{url}/start", json={"business": "cash_deposit"})).status_code == 201
    put = await alice.put(f"{url}/files/voucher-1.jpg?role=voucher", content=b"\xff\xd8 photo")
    assert put.status_code == 200
    for step in ("card_read", "voucher_capture", "e_signature"):
        r = await alice.post(f"{url}/steps", json={"step": step})
        assert r.status_code == 200, r.text
    return alice


def _nothing_written(cloud: Cloud) -> None:
    left = sorted(p.name for p in cloud.ov.evidence_dir.iterdir() if p.name != ".staging")
    assert left == []  # neither the package nor a partial directory
    assert (cloud.ov.evidence_dir / ".staging" / SESSION / "voucher-1.jpg").exists()


def _verify_cli(package: Path, cloud: Cloud, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    from cloud.evidence.keys import public_pem

    trust = []
    for name, key in (("seal", cloud.ov.evidence_keys.seal), ("tsa", cloud.ov.evidence_keys.tsa)):
        path = tmp_path / f"{name}.pem"
        path.write_text(public_pem(key.public_key()))
        trust += ["--trust", str(path)]
    master = tmp_path / "master.key"
    master.write_bytes(cloud.ov.evidence_keys.data_master)
    cmd = [sys.executable, "-m", "cuntong", "evidence", "verify", str(package), *trust]
    return subprocess.run([*cmd, "--data-key", str(master)], capture_output=True, text=True)


async def test_finish_seals_in_a_worker_process_and_the_package_verifies(
    cloud: Cloud, tmp_path: Path
) -> None:
    alice = await _ready_to_finish(cloud)
    workers = cloud.ov.sealer.pids()
    assert workers and os.getpid() not in workers  # started with the app, not in-process
    done = await alice.post(f"/api/v1/workflow/{SESSION}/finish", json={})  # type: ignore[attr-defined]
    assert done.status_code == 200, done.text
    record = await EvidenceRecord.get(session_id=SESSION)
    checked = _verify_cli(Path(record.package_dir), cloud, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith("INTACT") and "1 files" in checked.stdout
    assert sorted(p.name for p in cloud.ov.evidence_dir.iterdir()) == [".staging", SESSION]
    assert not (cloud.ov.evidence_dir / ".staging" / SESSION).exists()


async def test_worker_death_fails_the_request_and_writes_nothing(
    cloud: Cloud, tmp_path: Path
) -> None:
    alice = await _ready_to_finish(cloud)
    for pid in cloud.ov.sealer.pids():
        os.kill(pid, signal.SIGKILL)
    failed = await alice.post(f"/api/v1/workflow/{SESSION}/finish", json={})  # type: ignore[attr-defined]
    assert failed.status_code == 503 and "sealing worker died" in failed.text
    _nothing_written(cloud)
    assert not await EvidenceRecord.exists(session_id=SESSION)
    state = await WorkflowState.get(session_id=SESSION)
    assert state.outcome is None and state.events[-1]["kind"] != "session_end"

    again = await alice.post(f"/api/v1/workflow/{SESSION}/finish", json={})  # type: ignore[attr-defined]
    assert again.status_code == 200, again.text  # a fresh worker took over
    record = await EvidenceRecord.get(session_id=SESSION)
    assert _verify_cli(Path(record.package_dir), cloud, tmp_path).returncode == 0


async def test_worker_killed_mid_seal_leaves_no_partial_package(cloud: Cloud) -> None:
    await _ready_to_finish(cloud)
    recording = EvidenceFile("rec-000.webm", "recording", os.urandom(48 * 1024 * 1024))
    finishing = asyncio.create_task(
        service.finish(
            cloud.ov, SESSION, engine.Outcome.COMPLETED, cloud.clock(), files=[recording]
        )
    )
    await asyncio.sleep(0.3)  # the job is in the worker (SM4 over 48 MB takes seconds)
    assert not finishing.done()
    for pid in cloud.ov.sealer.pids():
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(SealerFailed, match="sealing worker died"):
        await finishing
    _nothing_written(cloud)
    assert not await EvidenceRecord.exists(session_id=SESSION)
