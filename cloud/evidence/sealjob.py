"""One evidence package to seal, as plain picklable data, and the work of sealing it.

``seal(keys, job)`` runs in the sealing worker (``cloud.evidence.sealer``): it reads and
checks the captured files, builds the package and writes it into ``job.partial``, a
directory beside the target that nobody reads. ``place(job)`` — in the API, once the worker
answered — renames it to the target, so a package appears whole or not at all.

The job carries the key material as raw bytes (keys do not pickle); worker and API run on
the same host as the same user, which already holds the key files.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.evidence import package
from cloud.evidence.chain import Timeline
from cloud.evidence.errors import EvidenceError
from cloud.evidence.keys import EvidenceKeys
from common import suite as suite_lib


class CapturedFileError(EvidenceError):
    """A file captured for the package is missing or no longer matches its digest."""


@dataclass(frozen=True, slots=True)
class KeyBytes:
    """``EvidenceKeys`` as raw bytes, to cross into the worker."""

    seal: bytes
    tsa: bytes
    data_master: bytes

    @classmethod
    def of(cls, keys: EvidenceKeys) -> KeyBytes:
        def raw(key: ed25519.Ed25519PrivateKey) -> bytes:
            return key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )

        return cls(raw(keys.seal), raw(keys.tsa), keys.data_master)

    def keys(self) -> EvidenceKeys:
        return EvidenceKeys(
            ed25519.Ed25519PrivateKey.from_private_bytes(self.seal),
            ed25519.Ed25519PrivateKey.from_private_bytes(self.tsa),
            self.data_master,
        )


@dataclass(frozen=True, slots=True)
class Captured:
    """A file kept sealed at rest in staging, with its plaintext digest from the timeline."""

    name: str
    role: str
    digest: str


@dataclass(frozen=True, slots=True)
class SealJob:
    session_id: str
    business: str
    operator: dict[str, Any]
    timeline: Timeline
    #: where the package goes once complete (``place`` moves it there)
    target: Path
    now: dt.datetime
    serial: int
    #: files handed over in memory
    files: tuple[package.EvidenceFile, ...] = ()
    #: files captured during the session, sealed at rest under ``staging``
    staging: Path | None = None
    captured: tuple[Captured, ...] = ()
    #: the manifest's ``identity`` section (``package.build``)
    identity: dict[str, Any] | None = None

    @property
    def partial(self) -> Path:
        """The worker's directory while it writes (unique per job: the serial)."""
        return self.target.with_name(f".{self.target.name}.partial-{self.serial}")


def staging_aad(session_id: str, name: str) -> bytes:
    return f"staging:{session_id}/{name}".encode()


def read_captured(
    keys: EvidenceKeys,
    suite: suite_lib.Suite,
    session_id: str,
    staging: Path,
    files: Sequence[Captured],
) -> list[package.EvidenceFile]:
    """The captured files, decrypted and checked against the digests on the timeline."""
    key = keys.data_key(suite, session_id)
    out = []
    for f in files:
        try:
            blob = (staging / f.name).read_bytes()
            data = suite_lib.decrypt(suite, key, blob, aad=staging_aad(session_id, f.name))
        except (OSError, suite_lib.DecryptError) as err:
            raise CapturedFileError(f"captured file {f.name} is missing or was altered") from err
        if suite_lib.digest(suite, data).hex() != f.digest:
            raise CapturedFileError(f"captured file {f.name} changed since capture")
        out.append(package.EvidenceFile(f.name, f.role, data))
    return out


def seal(keys: KeyBytes, job: SealJob) -> Path:
    """Build the package and write it to ``job.partial`` (runs in the worker)."""
    ev_keys = keys.keys()
    files = list(job.files)
    if job.captured and job.staging is not None:
        files = (
            read_captured(ev_keys, job.timeline.suite, job.session_id, job.staging, job.captured)
            + files
        )
    doc, sealed = package.build(
        session_id=job.session_id,
        business=job.business,
        operator=job.operator,
        timeline=job.timeline,
        files=files,
        keys=ev_keys,
        now=job.now,
        serial=job.serial,
        identity=job.identity,
    )
    shutil.rmtree(job.partial, ignore_errors=True)
    return package.write(job.partial, doc, sealed)


def place(job: SealJob) -> Path:
    """Move a finished package into place; OSError if something already is there."""
    try:
        # rename() onto an existing non-empty directory fails: the first finisher wins.
        job.partial.rename(job.target)
    except OSError:
        shutil.rmtree(job.partial, ignore_errors=True)
        raise
    return job.target
