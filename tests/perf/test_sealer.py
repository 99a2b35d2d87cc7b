"""Evidence sealing in a worker process: complete, verifiable, and all-or-nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from cloud.evidence.models import EvidenceRecord
from cloud.workflow import engine, service
from cloud.workflow.models import WorkflowState
from tests.oversight.conftest import Cloud

SESSION = "P-1"


async def _ready_to_finish(cloud: Cloud) -> object:
    alice = await cloud.client("alice", "teller")
    sup = await cloud.client("sup", "supervisor")
    url = f"/api/v1/workflow/{SESSION}"
    assert (await alice.post(f"{url}/start", json={"business": "cash_deposit"})).status_code == 201
    put = await alice.put(f"{url}/files/voucher-1.jpg?role=voucher", content=b"\xff\xd8 photo")
    assert put.status_code == 200
    for step in ("card_read", "voucher_capture", "e_signature"):  # device steps: overridden
        r = await sup.post(f"{url}/steps/{step}/override", json={"reason": "sealer test rig"})
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


async def test_worker_killed_mid_seal_fails_the_request_and_writes_nothing(
    cloud: Cloud, tmp_path: Path
) -> None:
    alice = await _ready_to_finish(cloud)
    for n in range(2):  # 32 MB more to seal (SM4): the worker is busy for a while
        url = f"/api/v1/workflow/{SESSION}/files/rec-{n}.webm?role=recording"
        put = await alice.put(url, content=os.urandom(16 * 1024 * 1024))  # type: ignore[attr-defined]
        assert put.status_code == 200, put.text
    finishing = asyncio.create_task(alice.post(f"/api/v1/workflow/{SESSION}/finish", json={}))  # type: ignore[attr-defined]
    (worker,) = cloud.ov.sealer.pids()
    await asyncio.sleep(0.3)
    assert not finishing.done()
    os.kill(worker, signal.SIGKILL)
    failed = await finishing
    assert failed.status_code == 503 and "sealing worker died" in failed.text
    _nothing_written(cloud)
    assert not await EvidenceRecord.exists(session_id=SESSION)
    state = await WorkflowState.get(session_id=SESSION)
    assert state.outcome is None and state.events[-1]["kind"] != "session_end"

    again = await alice.post(f"/api/v1/workflow/{SESSION}/finish", json={})  # type: ignore[attr-defined]
    assert again.status_code == 200, again.text  # a fresh worker took over
    assert cloud.ov.sealer.pids() != [worker]
    record = await EvidenceRecord.get(session_id=SESSION)
    checked = _verify_cli(Path(record.package_dir), cloud, tmp_path)
    assert checked.returncode == 0 and "3 files" in checked.stdout, checked.stdout


async def test_a_worker_that_died_idle_is_replaced(cloud: Cloud) -> None:
    await _ready_to_finish(cloud)
    (worker,) = cloud.ov.sealer.pids()
    os.kill(worker, signal.SIGKILL)
    for _ in range(100):
        if not cloud.ov.sealer.pids():
            break
        await asyncio.sleep(0.02)
    assert cloud.ov.sealer.pids() == []  # noticed at once (the socket closed)
    await service.finish(cloud.ov, SESSION, engine.Outcome.COMPLETED, cloud.clock())
    assert await EvidenceRecord.exists(session_id=SESSION)
    assert cloud.ov.sealer.pids() not in ([], [worker])
