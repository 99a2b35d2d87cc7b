"""Backup and restore drill: a deployment backed up with `cuntong backup create` comes back in
an empty one with `cuntong backup restore`, and `cuntong evidence verify` passes there.

Real parts throughout: SQLite's backup API or pg_dump/pg_restore against a real PostgreSQL, a
real VictoriaMetrics snapshot restored into a second VictoriaMetrics, the CA and evidence keys
made by the project's own code, and an evidence package sealed by the evidence code.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.db import close_db, open_db
from cloud.evidence.keys import load_or_create as evidence_keys
from cloud.models import Terminal
from common import procs
from cuntong.servers.postgres import Postgres
from cuntong.servers.victoria import VictoriaMetrics
from provisioning.ca import load_or_create as load_ca
from tests.helpers import fresh_database
from tests.oversight.evidence_helpers import session_package

NOW = dt.datetime(2026, 12, 6, 3, 0, tzinfo=dt.UTC)
PASSPHRASE = "correct horse battery staple"


def _cuntong(*argv: str, passphrase: str = PASSPHRASE) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env["CUNTONG_BACKUP_PASSPHRASE"] = passphrase
    return subprocess.run(
        [sys.executable, "-m", "cuntong", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return bytes(answer.read())


def _post(url: str, body: bytes) -> None:
    urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10).close()


async def _deployment(state: Path, db_url: str, vm: VictoriaMetrics) -> Path:
    """A small live deployment: CA, evidence keys, a sealed package, a recording, a database
    row and a telemetry sample. Returns the package folder."""
    load_ca(state, NOW)
    keys = evidence_keys(state)
    package = session_package(state / "evidence" / "sess-0001", keys)
    (state / "recordings").mkdir()
    (state / "recordings" / "sess-0001-teller.webm").write_bytes(b"\x1a\x45\xdf\xa3" + b"v" * 4096)
    EXECUTOR_CACHE.clear()
    await open_db(db_url)
    try:
        await Terminal.create(id="T-BACKUP-1", city="宝鸡市", telemetry_seq=7)
    finally:
        await close_db()
    line = b'backup_probe{terminal="T-BACKUP-1"} 42 ' + str(int(NOW.timestamp() * 1000)).encode()
    _post(f"{vm.url}/api/v1/import/prometheus", line)
    _get(f"{vm.url}/internal/force_flush")
    return package


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
async def test_backup_restores_into_an_empty_deployment(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    state, out = tmp_path / "live", tmp_path / "backup.tar.gz"
    if database == "sqlite":
        db_url, new_db = f"sqlite://{tmp_path / 'live.sqlite3'}", f"sqlite://{tmp_path / 'r.db'}"
    else:
        pg: Postgres = request.getfixturevalue("postgres_server")
        db_url, new_db = await fresh_database(pg, "live"), await fresh_database(pg, "restored")
    vm = VictoriaMetrics(procs.free_port(), tmp_path / "vm" / "data").start()
    try:
        package = await _deployment(state, db_url, vm)
        made = _cuntong(
            "backup",
            "create",
            "--out",
            str(out),
            "--state-dir",
            str(state),
            "--db-url",
            db_url,
            "--tsdb-url",
            vm.url,
            "--tsdb-data",
            str(vm.data_dir),
        )
    finally:
        vm.stop()
    assert made.returncode == 0, made.stderr
    assert "encrypted" in made.stdout

    # No private key is readable in the archive.
    with tarfile.open(out) as tar:
        blobs = [tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()]  # type: ignore[union-attr]
        names = tar.getnames()
    assert not any(b"PRIVATE KEY" in blob for blob in blobs)
    dump = "db/cloud.sqlite3" if database == "sqlite" else "db/cloud.pgdump"
    assert "state/ca/issuing-key.pem" in names and dump in names

    # A wrong passphrase restores nothing.
    target = tmp_path / "restored"
    wrong = _cuntong(
        "backup",
        "restore",
        str(out),
        "--state-dir",
        str(target),
        "--db-url",
        new_db,
        passphrase="not the passphrase at all",
    )
    assert wrong.returncode == 2 and "wrong backup passphrase" in wrong.stderr
    assert not target.exists()

    back = _cuntong(
        "backup",
        "restore",
        str(out),
        "--state-dir",
        str(target),
        "--db-url",
        new_db,
        "--tsdb-data",
        str(tmp_path / "vm2" / "data"),
    )
    assert back.returncode == 0, back.stderr

    # Keys came back byte for byte, still private.
    for rel in (
        "ca/issuing-key.pem",
        "ca/root-key.pem",
        "keys/evidence-seal-ed25519.pem",
        "keys/evidence-data-master.key",
    ):
        assert (target / rel).read_bytes() == (state / rel).read_bytes(), rel
        assert (target / rel).stat().st_mode & 0o077 == 0, rel
    assert (target / "keys").stat().st_mode & 0o777 == 0o700
    assert (target / "recordings" / "sess-0001-teller.webm").read_bytes() == (
        state / "recordings" / "sess-0001-teller.webm"
    ).read_bytes()

    # The restored evidence verifies against the restored keys.
    restored_keys = evidence_keys(target)
    trust = tmp_path / "seal.pub.pem"
    trust.write_bytes(
        restored_keys.seal.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    tsa = tmp_path / "tsa.pub.pem"
    tsa.write_bytes(
        restored_keys.tsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    restored_package = target / package.relative_to(state)
    verify = _cuntong(
        "evidence",
        "verify",
        str(restored_package),
        "--trust",
        str(trust),
        "--trust",
        str(tsa),
        "--data-key",
        str(target / "keys" / "evidence-data-master.key"),
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("INTACT")

    # The database row, and the telemetry in a VictoriaMetrics started on the restored folder.
    EXECUTOR_CACHE.clear()
    await open_db(new_db)
    try:
        assert (await Terminal.get(id="T-BACKUP-1")).telemetry_seq == 7
    finally:
        await close_db()
    vm2 = VictoriaMetrics(procs.free_port(), tmp_path / "vm2" / "data").start()
    try:
        start, end = int(NOW.timestamp()) - 60, int(NOW.timestamp()) + 60
        exported = _get(f"{vm2.url}/api/v1/export?match[]=backup_probe&start={start}&end={end}")
    finally:
        vm2.stop()
    rows = [json.loads(line) for line in exported.splitlines() if line.strip()]
    assert [r["values"] for r in rows] == [[42]]

    # Restoring again over the now-full deployment is refused.
    again = _cuntong("backup", "restore", str(out), "--state-dir", str(target), "--db-url", new_db)
    assert again.returncode == 2 and "not empty" in again.stderr


def test_an_altered_archive_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "live"
    evidence_keys(state)
    db = tmp_path / "live.sqlite3"
    db.write_bytes(b"")  # an empty file is a valid (empty) SQLite database
    out = tmp_path / "b.tar.gz"
    made = _cuntong(
        "backup",
        "create",
        "--out",
        str(out),
        "--state-dir",
        str(state),
        "--db-url",
        f"sqlite://{db}",
    )
    assert made.returncode == 0, made.stderr
    # Rewrite the archive with one byte of the encrypted master key flipped.
    altered = tmp_path / "altered.tar.gz"
    with tarfile.open(out) as src, tarfile.open(altered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "state/keys/evidence-data-master.key":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(member, io.BytesIO(data))
    back = _cuntong(
        "backup",
        "restore",
        str(altered),
        "--state-dir",
        str(tmp_path / "r"),
        "--db-url",
        f"sqlite://{tmp_path / 'r.sqlite3'}",
    )
    assert back.returncode == 2
    assert "state/keys/evidence-data-master.key is missing or altered" in back.stderr
    assert not (tmp_path / "r").exists()
