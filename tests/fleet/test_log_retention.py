"""Uploaded log bundles are deleted when their retention ends (``LogStore.sweep`` and the
leader's ``fleet-log-retention`` job), each deletion audited."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.auth.models import AuditEntry
from cloud.db import close_db, open_db
from common import suite as suite_lib
from common.wire import log_upload as wire
from fleet.logstore import COMPLETE, OPEN, LogStore
from fleet.settings import FleetSettings
from fleet.wiring import RETENTION_ACTOR, log_retention
from provisioning.ca import load_or_create
from tests.helpers import eventually

NOW = dt.datetime.now(dt.UTC)


def store(tmp_path: Path) -> LogStore:
    ca = load_or_create(tmp_path / "ca-state", NOW)
    return LogStore(tmp_path / "fleet-logs", suite_lib.Suite.STANDARD, ca.issuing)


def upload(logs: LogStore, upload_id: str, at: dt.datetime, *, complete: bool) -> bytes:
    """An upload through the store's own steps: announce, every chunk, reassemble."""
    bundle = secrets.token_bytes(3000)
    manifest = wire.plan(upload_id, "SX-00001", bundle, 1024)
    logs.open(manifest, "-----BEGIN CERTIFICATE-----", at)
    for i, digest in enumerate(manifest.chunks):
        logs.put_chunk(manifest, digest, wire.chunk(bundle, manifest, i))
    if complete:
        logs.complete(upload_id, at)
    return bundle


def test_sweep_deletes_what_outlived_its_retention_and_keeps_the_rest(tmp_path: Path) -> None:
    logs = store(tmp_path)
    keep = dt.timedelta(days=30)
    upload(logs, "old", NOW - dt.timedelta(days=31), complete=True)
    upload(logs, "abandoned", NOW - dt.timedelta(days=31), complete=False)
    recent = upload(logs, "recent", NOW - dt.timedelta(days=29), complete=True)
    upload(logs, "open", NOW - dt.timedelta(hours=1), complete=False)
    (tmp_path / "fleet-logs" / "stray").mkdir()  # no record: not the sweep's to judge

    assert sorted(logs.sweep(NOW, keep)) == ["abandoned", "old"]

    assert not (tmp_path / "fleet-logs" / "old").exists()
    assert not (tmp_path / "fleet-logs" / "abandoned").exists()
    with pytest.raises(wire.UploadRefused) as err:
        logs.bundle("old")
    assert err.value.reason == "no_such_upload"
    assert logs.bundle("recent") == recent
    assert {r["upload_id"]: r["state"] for r in logs.list()} == {"recent": COMPLETE, "open": OPEN}
    assert (tmp_path / "fleet-logs" / "stray").is_dir()
    assert (tmp_path / "fleet-logs" / "key").exists()
    assert logs.sweep(NOW, keep) == []  # nothing more to do


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[None]:
    await open_db(f"sqlite://{tmp_path / 'cloud.sqlite3'}")
    try:
        yield
    finally:
        await close_db()


async def test_the_leaders_job_sweeps_and_audits_each_deletion(tmp_path: Path, db: None) -> None:
    logs = store(tmp_path)
    upload(logs, "expired", NOW - dt.timedelta(days=8), complete=True)
    upload(logs, "kept", NOW - dt.timedelta(days=6), complete=True)
    settings = FleetSettings(log_retention_days=7, log_sweep_interval_s=0.2)
    job = asyncio.create_task(log_retention(settings, logs)())
    try:
        rows = await eventually(lambda: AuditEntry.filter(action="fleet_logs_expired"), 30)
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
    assert [(r.actor, r.target, r.detail) for r in rows] == [
        (RETENTION_ACTOR, "expired", {"days": 7})
    ]
    assert [r["upload_id"] for r in logs.list()] == ["kept"]
