"""One backup of a deployment, and its restore into an empty one.

    cuntong backup create  --out FILE.tar.gz   (database, telemetry, keys, evidence, recordings)
    cuntong backup restore FILE.tar.gz --state-dir EMPTY [--db-url EMPTY] [--tsdb-data EMPTY]

The archive holds:

- ``db/cloud.sqlite3`` (SQLite's online backup API) or ``db/cloud.pgdump`` (``pg_dump -Fc``);
- ``tsdb/…``: a VictoriaMetrics snapshot (``/snapshot/create``, read from its data folder, so
  the backup runs on the VictoriaMetrics host), restored as a fresh ``-storageDataPath``;
- ``state/…``: the cloud's state folder: CA, evidence and broker keys, service certificates,
  evidence packages, archived recordings (``<state>/recordings``);
- ``recordings/…``: the recordings folder when it lives outside the state folder.

Secrets are encrypted at rest in the archive: every state file the project wrote private
(``write_private``: no group or other bits) is sealed with AES-256-GCM under a random data key,
and that key is wrapped by a ``KeyWrapper`` — a passphrase (scrypt) here, or a bank's KMS
through the same two methods. ``manifest.json`` lists every member with its SHA-256; its MAC
under the data key (``manifest.mac``) makes any change to the archive fail the restore before
anything is written.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from common import procs
from common.errors import CuntongError

FORMAT = 1


class BackupError(CuntongError):
    """A backup cannot be made or restored; the message says what and where."""


class KeyWrapper(Protocol):
    """Wraps the archive's data key: a passphrase here, a KMS in a bank (same two calls)."""

    def wrap(self, key: bytes) -> dict[str, str]: ...
    def unwrap(self, wrapped: dict[str, str]) -> bytes: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class PassphraseWrapper:
    """scrypt (n=2^15, r=8, p=1) stretches the passphrase into an AES-256-GCM key."""

    passphrase: bytes

    def __post_init__(self) -> None:
        if len(self.passphrase) < 12:
            raise BackupError("the backup passphrase must be at least 12 characters")

    def _kek(self, salt: bytes) -> AESGCM:
        return AESGCM(Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(self.passphrase))

    def wrap(self, key: bytes) -> dict[str, str]:
        salt, nonce = os.urandom(16), os.urandom(12)
        sealed = self._kek(salt).encrypt(nonce, key, b"cuntong-backup-key")
        return {
            "scheme": "passphrase-scrypt-aes256gcm",
            "salt": _b64(salt),
            "nonce": _b64(nonce),
            "key": _b64(sealed),
        }

    def unwrap(self, wrapped: dict[str, str]) -> bytes:
        if wrapped.get("scheme") != "passphrase-scrypt-aes256gcm":
            raise BackupError(f"the archive's key is wrapped by {wrapped.get('scheme')!r}")
        kek = self._kek(base64.b64decode(wrapped["salt"]))
        try:
            return kek.decrypt(
                base64.b64decode(wrapped["nonce"]),
                base64.b64decode(wrapped["key"]),
                b"cuntong-backup-key",
            )
        except InvalidTag as err:
            raise BackupError("wrong backup passphrase") from err


@dataclass
class Sources:
    """What one deployment keeps, as ``cuntong backup create`` is told."""

    state_dir: Path
    db_url: str
    tsdb_url: str = ""  # VictoriaMetrics HTTP address; empty: no telemetry in the backup
    tsdb_data: Path | None = None  # its -storageDataPath
    recordings: Path | None = None  # when outside the state folder


def _is_secret(path: Path) -> bool:
    return not path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)


def _walk(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield path


class _Writer:
    def __init__(self, tar: tarfile.TarFile, data_key: bytes) -> None:
        self.tar, self.aead = tar, AESGCM(data_key)
        self.members: list[dict[str, Any]] = []
        self.dirs: dict[str, int] = {}  # folder modes: the keys' folders are 0700

    def add_bytes(self, name: str, data: bytes, mode: int, encrypt: bool) -> None:
        if encrypt:
            nonce = os.urandom(12)
            data = nonce + self.aead.encrypt(nonce, data, name.encode())
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o600
        self.tar.addfile(info, io.BytesIO(data))
        self.members.append(
            {
                "name": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "mode": mode,
                "encrypted": encrypt,
            }
        )

    def add_tree(self, prefix: str, root: Path, secrets: bool) -> None:
        for folder in (p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()):
            self.dirs[f"{prefix}/{folder.relative_to(root).as_posix()}"] = stat.S_IMODE(
                folder.stat().st_mode
            )
        for path in _walk(root):
            name = f"{prefix}/{path.relative_to(root).as_posix()}"
            mode = stat.S_IMODE(path.stat().st_mode)
            self.add_bytes(name, path.read_bytes(), mode, secrets and _is_secret(path))


def _pg_uri(url: str) -> str:
    for scheme in ("asyncpg://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql://" + url.removeprefix(scheme)
    return url


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite://").split("?", 1)[0])


def _dump_db(url: str, into: Path) -> Path:
    if url.startswith("sqlite://"):
        src = _sqlite_path(url)
        if not src.exists():
            raise BackupError(f"no SQLite database at {src}")
        target = into / "cloud.sqlite3"
        with sqlite3.connect(src) as source, sqlite3.connect(target) as copy:
            source.backup(copy)  # a consistent copy while the cloud keeps writing
        return target
    target = into / "cloud.pgdump"
    done = subprocess.run(
        [procs.find_binary("pg_dump"), "-Fc", "--no-owner", "-f", str(target), _pg_uri(url)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()}")
    return target


def _tsdb_snapshot(url: str, data_dir: Path, into: Path) -> None:
    """A VictoriaMetrics snapshot copied out of its data folder, then deleted there."""
    with urllib.request.urlopen(f"{url}/snapshot/create", timeout=30) as answer:
        name = json.load(answer).get("snapshot", "")
    if not name:
        raise BackupError(f"VictoriaMetrics at {url} made no snapshot")
    try:
        # The snapshot's data/ entries are symbolic links into the parts: copy what they hold.
        shutil.copytree(data_dir / "snapshots" / name, into, symlinks=False)
    finally:
        urllib.request.urlopen(f"{url}/snapshot/delete?snapshot={name}", timeout=30).close()


def create(sources: Sources, out: Path, wrapper: KeyWrapper, now: dt.datetime) -> dict[str, Any]:
    """Write the archive to ``out``; return its manifest."""
    if not sources.state_dir.is_dir():
        raise BackupError(f"no state folder at {sources.state_dir}")
    data_key = AESGCM.generate_key(256)
    with tempfile.TemporaryDirectory(prefix="cuntong-backup-") as tmp:
        work = Path(tmp)
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            writer = _Writer(tar, data_key)
            dump = _dump_db(sources.db_url, work)
            writer.add_bytes(f"db/{dump.name}", dump.read_bytes(), 0o600, False)
            if sources.tsdb_url:
                if sources.tsdb_data is None:
                    raise BackupError("--tsdb-data (VictoriaMetrics' -storageDataPath) is needed")
                _tsdb_snapshot(sources.tsdb_url, sources.tsdb_data, work / "tsdb")
                writer.add_tree("tsdb", work / "tsdb", secrets=False)
            writer.add_tree("state", sources.state_dir, secrets=True)
            if sources.recordings is not None and sources.recordings.is_dir():
                writer.add_tree("recordings", sources.recordings, secrets=False)
            manifest = {
                "format": FORMAT,
                "created_at": now.isoformat(),
                "database": "sqlite" if dump.suffix == ".sqlite3" else "postgres",
                "key": wrapper.wrap(data_key),
                "members": writer.members,
                "dirs": writer.dirs,
            }
            body = json.dumps(manifest, sort_keys=True, indent=1).encode()
            writer.add_bytes("manifest.json", body, 0o600, False)
            writer.add_bytes("manifest.mac", _mac(data_key, body).encode(), 0o600, False)
        os.replace(partial, out)
    return manifest


def _mac(key: bytes, body: bytes) -> str:
    return hmac.new(key, b"cuntong-backup-manifest\0" + body, hashlib.sha256).hexdigest()


@dataclass
class Targets:
    """Where ``cuntong backup restore`` puts things; each must be empty (or absent)."""

    state_dir: Path
    db_url: str
    tsdb_data: Path | None = None
    recordings: Path | None = None


def _must_be_empty(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise BackupError(f"{what} {path} is not empty: restore only into an empty deployment")


def _read(archive: Path, wrapper: KeyWrapper) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Every member, checked against the manifest and its MAC, secrets decrypted."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            raw = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    except (OSError, tarfile.TarError, EOFError) as err:
        raise BackupError(f"{archive} is not a readable backup: {err}") from err
    if "manifest.json" not in raw or "manifest.mac" not in raw:
        raise BackupError(f"{archive} has no manifest: not a cuntong backup")
    manifest = json.loads(raw["manifest.json"])
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r}; this version reads {FORMAT}")
    data_key = wrapper.unwrap(manifest["key"])
    if not hmac.compare_digest(_mac(data_key, raw["manifest.json"]), raw["manifest.mac"].decode()):
        raise BackupError("the manifest was altered (its MAC does not match)")
    aead, files = AESGCM(data_key), {}
    for member in manifest["members"]:
        name = member["name"]
        if name in ("manifest.json", "manifest.mac"):
            continue
        data = raw.get(name)
        if data is None or hashlib.sha256(data).hexdigest() != member["sha256"]:
            raise BackupError(f"{name} is missing or altered in the archive")
        if member["encrypted"]:
            try:
                data = aead.decrypt(data[:12], data[12:], name.encode())
            except InvalidTag as err:
                raise BackupError(f"{name} does not decrypt") from err
        files[name] = data
    return manifest, files


def _write_tree(
    files: dict[str, bytes], modes: dict[str, int], dirs: dict[str, int], prefix: str, root: Path
) -> int:
    count = 0
    for name, data in files.items():
        if not name.startswith(prefix + "/"):
            continue
        rel = Path(name.removeprefix(prefix + "/"))
        if rel.is_absolute() or ".." in rel.parts:
            raise BackupError(f"refusing member {name}: it points outside {root}")
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, modes[name] & 0o777)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        count += 1
    root.mkdir(parents=True, exist_ok=True)
    for name, mode in dirs.items():
        if name.startswith(prefix + "/") and (root / name.removeprefix(prefix + "/")).is_dir():
            (root / name.removeprefix(prefix + "/")).chmod(mode & 0o777)
    return count


async def _pg_is_empty(uri: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(uri)
    try:
        n = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return int(n) == 0


def _restore_db(kind: str, data: bytes, url: str) -> None:
    if kind == "sqlite":
        if not url.startswith("sqlite://"):
            raise BackupError("the backup holds a SQLite database: give a sqlite:// --db-url")
        target = _sqlite_path(url)
        if target.exists():
            raise BackupError(f"{target} exists: restore only into an empty deployment")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return
    uri = _pg_uri(url)
    if not uri.startswith("postgresql://"):
        raise BackupError("the backup holds a PostgreSQL dump: give a postgres:// --db-url")
    if not asyncio.run(_pg_is_empty(uri)):
        raise BackupError("the target PostgreSQL database has tables: restore into an empty one")
    with tempfile.NamedTemporaryFile(suffix=".pgdump") as dump:
        dump.write(data)
        dump.flush()
        done = subprocess.run(
            [
                procs.find_binary("pg_restore"),
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "-d",
                uri,
                dump.name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()}")


def restore(archive: Path, targets: Targets, wrapper: KeyWrapper) -> dict[str, int]:
    """Check the whole archive, then write it into the empty targets; counts per part."""
    manifest, files = _read(archive, wrapper)
    _must_be_empty(targets.state_dir, "state folder")
    has_tsdb = any(name.startswith("tsdb/") for name in files)
    if has_tsdb:
        if targets.tsdb_data is None:
            raise BackupError("the backup holds telemetry: give --tsdb-data (an empty folder)")
        _must_be_empty(targets.tsdb_data, "VictoriaMetrics data folder")
    has_recordings = any(name.startswith("recordings/") for name in files)
    if has_recordings and targets.recordings is not None:
        _must_be_empty(targets.recordings, "recordings folder")
    modes = {m["name"]: m["mode"] for m in manifest["members"]}
    dirs = manifest.get("dirs", {})
    db_name = "db/cloud.sqlite3" if manifest["database"] == "sqlite" else "db/cloud.pgdump"
    _restore_db(manifest["database"], files[db_name], targets.db_url)
    counts = {"database": 1, "state": _write_tree(files, modes, dirs, "state", targets.state_dir)}
    if has_tsdb and targets.tsdb_data is not None:
        counts["tsdb"] = _write_tree(files, modes, dirs, "tsdb", targets.tsdb_data)
    if has_recordings:
        where = targets.recordings or targets.state_dir / "recordings"
        counts["recordings"] = _write_tree(files, modes, dirs, "recordings", where)
    return counts
