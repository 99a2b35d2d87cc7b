"""The call recording's SHA-256 when it is archived after the package was sealed (pure).

The recording pipeline (``cloud.media``) finishes seconds after the call ends, often after
the teller closed the business and the package was sealed. A sealed manifest cannot change,
so the recording's reference and SHA-256 go into ``recording.json`` beside ``package.json``:
signed by the same seal key, bound to the package by the digest of its seal signature. The
verifier takes the recording from the manifest's ``identity.recording`` when the recording
was ready at sealing, else from this addendum.

    {"format": "cuntong-evidence-addendum/1", "session_id", "package_seal": hex digest,
     "recording": {"reference", "sha256", "bytes"?}, "at", "seal": {"alg", "key_id",
     "public_key", "signature"}}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.evidence.canonical import canonical
from cloud.evidence.keys import key_id, public_pem

FORMAT = "cuntong-evidence-addendum/1"
NAME = "recording.json"


def package_seal_digest(document: Mapping[str, Any]) -> str:
    """What binds an addendum to one package: SHA-256 of its seal signature (hex)."""
    return hashlib.sha256(str(document["seal"]["signature"]).encode()).hexdigest()


def recording_entry(reference: str, sha256: str, size: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"reference": reference, "sha256": sha256}
    if size is not None:
        entry["bytes"] = size
    return entry


def build(
    document: Mapping[str, Any],
    recording: Mapping[str, Any],
    seal_key: ed25519.Ed25519PrivateKey,
    now: dt.datetime,
) -> dict[str, Any]:
    body = {
        "format": FORMAT,
        "session_id": document["manifest"]["session_id"],
        "package_seal": package_seal_digest(document),
        "recording": dict(recording),
        "at": now.astimezone(dt.UTC).isoformat(),
    }
    seal = {
        "alg": "ed25519",
        "key_id": key_id(seal_key.public_key()),
        "public_key": public_pem(seal_key.public_key()),
        "signature": seal_key.sign(canonical(body)).hex(),
    }
    return {**body, "seal": seal}


def write(directory: Path, addendum: Mapping[str, Any]) -> Path:
    """Atomically (a rename), so a reader never sees half an addendum."""
    target = directory / NAME
    tmp = target.with_name(f".{NAME}.{os.getpid()}")
    tmp.write_text(json.dumps(addendum, ensure_ascii=False, indent=1))
    tmp.replace(target)
    return target


def read(directory: Path) -> dict[str, Any] | None:
    """The addendum, None if there is none; ValueError if it is unreadable."""
    try:
        text = (directory / NAME).read_text()
    except FileNotFoundError:
        return None
    raw = json.loads(text)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"{NAME} is not a {FORMAT} document")
    return raw


def check(
    addendum: Mapping[str, Any],
    document: Mapping[str, Any],
    key: ed25519.Ed25519PublicKey | None,
) -> list[str]:
    """Problems with an addendum: its seal (under ``key``, the package's seal key) and its
    binding to this package."""
    problems = []
    body = {k: v for k, v in addendum.items() if k != "seal"}
    try:
        if key is not None:
            key.verify(bytes.fromhex(str(addendum["seal"]["signature"])), canonical(body))
    except (KeyError, TypeError, ValueError):
        problems.append(f"{NAME}: seal malformed")
    except InvalidSignature:
        problems.append(f"{NAME}: seal invalid — the recording's reference or SHA-256 was changed")
    if addendum.get("session_id") != document["manifest"].get("session_id") or addendum.get(
        "package_seal"
    ) != package_seal_digest(document):
        problems.append(f"{NAME}: belongs to another package")
    return problems
