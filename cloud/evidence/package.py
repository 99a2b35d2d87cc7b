"""Build an evidence package for one session and write it to a directory.

Layout::

    <dir>/package.json     {"format", "manifest", "seal", "timestamp"}
    <dir>/files/<name>     each recording segment, voucher image and e-signature,
                           encrypted at rest (common.suite.encrypt, per-session key,
                           the file name as associated data)

The manifest names the session, business, serving teller and any second person, the
hash-chained event timeline and its head (with every terminal's signed step result and
every supervisor's override), for every file the digest of its plaintext and of its sealed
bytes (so an auditor checks integrity without the decryption key), and the ``identity``
section: the terminals' CA, the revocations known at sealing and the call recording's
reference and SHA-256. The
cloud's seal key signs ``canonical(manifest)``; the cloud TSA stamps the seal signature.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cloud.evidence import tsa
from cloud.evidence.canonical import canonical
from cloud.evidence.chain import Timeline
from cloud.evidence.errors import PackageFormatError
from cloud.evidence.keys import EvidenceKeys, key_id, public_pem
from common import suite as suite_lib

FORMAT = "cuntong-evidence/1"
ROLES = frozenset({"recording", "voucher", "e_signature"})


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    name: str
    role: str
    data: bytes


def safe_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not name or name != str(path):
        raise ValueError(f"unsafe evidence file name {name!r}")
    return name


def build(
    *,
    session_id: str,
    business: str,
    operator: dict[str, Any],
    timeline: Timeline,
    files: Sequence[EvidenceFile],
    keys: EvidenceKeys,
    now: dt.datetime,
    serial: int,
    identity: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The package document and the sealed file bytes by name (nothing written yet).

    ``identity``: what the customer's identity proof is checked against offline (the
    terminals' CA certificates, the revocations known at sealing, the recording's
    reference and SHA-256; ``cloud.evidence.identity``)."""
    suite = timeline.suite
    data_key = keys.data_key(suite, session_id)
    entries = []
    sealed: dict[str, bytes] = {}
    for f in files:
        if f.role not in ROLES:
            raise ValueError(f"unknown evidence file role {f.role!r}")
        name = safe_name(f.name)
        blob = suite_lib.encrypt(suite, data_key, f.data, aad=f"{session_id}/{name}".encode())
        sealed[name] = blob
        entries.append(
            {
                "name": name,
                "role": f.role,
                "bytes": len(f.data),
                "digest": suite_lib.digest(suite, f.data).hex(),
                "sealed_digest": suite_lib.digest(suite, blob).hex(),
            }
        )
    manifest = {
        "session_id": session_id,
        "business": business,
        "suite": suite.value,
        "operator": operator,
        "created_at": now.astimezone(dt.UTC).isoformat(),
        "events": [e.to_json() for e in timeline.events],
        "chain_head": timeline.head,
        "files": entries,
    }
    if identity is not None:
        manifest["identity"] = dict(identity)
    signature = keys.seal.sign(canonical(manifest))
    seal = {
        "alg": "ed25519",
        "key_id": key_id(keys.seal.public_key()),
        "public_key": public_pem(keys.seal.public_key()),
        "signature": signature.hex(),
    }
    imprint = suite_lib.digest(suite, signature).hex()
    stamp = tsa.stamp(keys.tsa, suite.value, imprint, serial, now)
    return {"format": FORMAT, "manifest": manifest, "seal": seal, "timestamp": stamp}, sealed


def write(directory: Path, document: dict[str, Any], sealed: dict[str, bytes]) -> Path:
    (directory / "files").mkdir(parents=True, exist_ok=True)
    for name, blob in sealed.items():
        target = directory / "files" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    (directory / "package.json").write_text(json.dumps(document, ensure_ascii=False, indent=1))
    return directory


def read_document(directory: Path) -> dict[str, Any]:
    try:
        doc = json.loads((directory / "package.json").read_text())
    except (OSError, ValueError) as err:
        raise PackageFormatError(f"{directory}: no readable package.json ({err})") from err
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PackageFormatError(f"{directory}: not a {FORMAT} package")
    for key in ("manifest", "seal", "timestamp"):
        if not isinstance(doc.get(key), dict):
            raise PackageFormatError(f"{directory}: package.json lacks {key!r}")
    return doc
