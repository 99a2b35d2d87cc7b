"""Log bundles uploaded by terminals (``collect_logs`` with ``upload``), kept encrypted.

One folder per upload under ``<state>/fleet-logs/`` (0700), named by the ``collect_logs``
command's id::

    upload.json          terminal, manifest, certificate, state (open | complete), sizes
    chunks/<sha256>      each chunk as it arrives (content-addressed: a resent chunk is the
                         same file), encrypted
    bundle.tgz.sealed    the reassembled bundle once its whole digest checked, encrypted

Logs are redacted on the terminal, but redaction is rule-based and a free-text name can slip
through, so everything here is sealed with ``common.suite.encrypt`` under a key kept in
``fleet-logs/key`` (0600), with the upload id (and chunk digest) as associated data: a file
moved to another upload does not open. Every file is 0600.

``certificate_key`` checks the certificate a terminal shows with its manifest the way
certificate renewal does (issued by our issuing CA, for this terminal, current, not revoked)
and returns the key its signatures must verify under.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from common import suite as suite_lib
from common.wire import log_upload as wire
from common.wire.log_upload import Manifest, UploadRefused
from provisioning.files import ensure_private_dir, write_private

OPEN, COMPLETE = "open", "complete"
UPLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def certificate_key(
    issuing: x509.Certificate,
    pem: str,
    terminal_id: str,
    now: dt.datetime,
    revoked: Collection[int],
) -> ec.EllipticCurvePublicKey:
    """The public key of ``pem``'s first certificate if it is this terminal's, current and
    not revoked; ``UploadRefused`` naming what is wrong otherwise."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
        cert.verify_directly_issued_by(issuing)
    except (ValueError, TypeError, InvalidSignature) as err:
        raise UploadRefused("bad_certificate", "not a certificate our CA issued") from err
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not cn or cn[0].value != terminal_id:
        raise UploadRefused("wrong_terminal", "the certificate is for another terminal")
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise UploadRefused("certificate_expired", "the certificate is not valid now")
    if cert.serial_number in revoked:
        raise UploadRefused("certificate_revoked", terminal_id)
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise UploadRefused("bad_certificate", "not an EC certificate")
    return key


class LogStore:
    def __init__(self, root: Path, suite: suite_lib.Suite, issuing: x509.Certificate) -> None:
        self.root = ensure_private_dir(root)
        self.suite = suite
        #: The CA that issues terminal certificates (what an uploader's must chain to).
        self.issuing = issuing
        key_path = root / "key"
        if not key_path.exists():
            write_private(key_path, secrets.token_bytes(suite_lib.key_bytes(suite)))
        self._key = key_path.read_bytes()

    def folder(self, upload_id: str) -> Path:
        if not UPLOAD_ID.match(upload_id):
            raise UploadRefused("no_such_upload", "an upload id is 1-64 letters, digits, - or _")
        return self.root / upload_id

    def record(self, upload_id: str) -> dict[str, Any] | None:
        path = self.folder(upload_id) / "upload.json"
        return json.loads(path.read_text()) if path.exists() else None  # type: ignore[no-any-return]

    def _save(self, upload_id: str, record: dict[str, Any]) -> None:
        write_private(self.folder(upload_id) / "upload.json", json.dumps(record).encode())

    def open(self, manifest: Manifest, certificate_pem: str, now: dt.datetime) -> list[int]:
        """Start the upload, or resume it with the same manifest: the chunk indices the
        store already holds."""
        record = self.record(manifest.upload_id)
        if record is None:
            ensure_private_dir(self.folder(manifest.upload_id) / "chunks")
            record = {
                "upload_id": manifest.upload_id,
                "terminal_id": manifest.terminal_id,
                "manifest": manifest.to_bytes().decode(),
                "certificate_pem": certificate_pem,
                "state": OPEN,
                "size": manifest.size,
                "sha256": manifest.sha256,
                "chunks": len(manifest.chunks),
                "created_at": now.isoformat(),
                "completed_at": None,
            }
            self._save(manifest.upload_id, record)
        elif record["state"] != OPEN:
            raise UploadRefused("upload_closed", f"upload {manifest.upload_id} is already stored")
        elif record["manifest"] != manifest.to_bytes().decode():
            raise UploadRefused(
                "manifest_changed", "resume with the manifest the upload began with"
            )
        else:
            record["certificate_pem"] = certificate_pem  # renewed since: the newer key signs
            self._save(manifest.upload_id, record)
        return self.have(manifest)

    def open_record(self, upload_id: str) -> tuple[dict[str, Any], Manifest]:
        record = self.record(upload_id)
        if record is None:
            raise UploadRefused("no_such_upload", f"announce upload {upload_id} first")
        if record["state"] != OPEN:
            raise UploadRefused("upload_closed", f"upload {upload_id} is already stored")
        return record, Manifest.parse(record["manifest"].encode())

    def have(self, manifest: Manifest) -> list[int]:
        chunks = self.folder(manifest.upload_id) / "chunks"
        return [i for i, d in enumerate(manifest.chunks) if (chunks / d).exists()]

    def put_chunk(self, manifest: Manifest, digest: str, data: bytes) -> None:
        aad = f"{manifest.upload_id}/{digest}".encode()
        sealed = suite_lib.encrypt(self.suite, self._key, data, aad=aad)
        write_private(self.folder(manifest.upload_id) / "chunks" / digest, sealed)

    def complete(self, upload_id: str, now: dt.datetime) -> dict[str, Any]:
        """Reassemble, check the whole digest, seal the bundle and drop the chunks."""
        record, manifest = self.open_record(upload_id)
        folder = self.folder(upload_id)
        missing = [i for i in range(len(manifest.chunks)) if i not in set(self.have(manifest))]
        if missing:
            raise UploadRefused("incomplete", f"chunks {missing[:10]} not received")
        chunks = [
            suite_lib.decrypt(
                self.suite,
                self._key,
                (folder / "chunks" / d).read_bytes(),
                aad=f"{upload_id}/{d}".encode(),
            )
            for d in manifest.chunks
        ]
        bundle = wire.assemble(manifest, chunks)
        sealed = suite_lib.encrypt(self.suite, self._key, bundle, aad=upload_id.encode())
        write_private(folder / "bundle.tgz.sealed", sealed)
        for d in set(manifest.chunks):
            (folder / "chunks" / d).unlink(missing_ok=True)
        record |= {"state": COMPLETE, "completed_at": now.isoformat()}
        self._save(upload_id, record)
        return public(record)

    def bundle(self, upload_id: str) -> bytes:
        record = self.record(upload_id)
        if record is None or record["state"] != COMPLETE:
            raise UploadRefused("no_such_upload", f"no stored bundle for {upload_id}")
        sealed = (self.folder(upload_id) / "bundle.tgz.sealed").read_bytes()
        return suite_lib.decrypt(self.suite, self._key, sealed, aad=upload_id.encode())

    def list(self, terminal_id: str | None = None) -> list[dict[str, Any]]:
        rows = []
        for path in self.root.glob("*/upload.json"):
            record = json.loads(path.read_text())
            if terminal_id is None or record["terminal_id"] == terminal_id:
                rows.append(public(record))
        return sorted(rows, key=lambda r: r["created_at"], reverse=True)

    def sweep(self, now: dt.datetime, keep: dt.timedelta) -> list[str]:
        """Delete every upload stored (or, never completed, announced) more than ``keep``
        before ``now``; the ids deleted. A folder without a readable record is left alone
        (it is not ours to judge)."""
        gone = []
        for path in sorted(self.root.glob("*/upload.json")):
            try:
                record = json.loads(path.read_text())
                since = dt.datetime.fromisoformat(record["completed_at"] or record["created_at"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if now - since > keep:
                shutil.rmtree(path.parent)
                gone.append(path.parent.name)
        return gone


def public(record: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of an upload (not the certificate nor the chunk list)."""
    keys = ("upload_id", "terminal_id", "state", "size", "sha256", "chunks")
    return {k: record[k] for k in keys} | {
        "created_at": record["created_at"],
        "completed_at": record["completed_at"],
    }
