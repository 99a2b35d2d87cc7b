"""Archiving a finished session's evidence, and deleting it when retention ends.

The teller-session service calls ``archive`` once a session ends, with the timeline it kept
(``chain.Timeline``), the files the terminal uploaded and the customer's identity as read
from the ID card. Deleting removes the package files, keeps the index row (marked deleted,
personal data wiped) and writes an audit entry — the record that evidence existed and who
removed it outlives the evidence.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tortoise.transactions import in_transaction

from cloud.auth import audit
from cloud.catalogue import Catalogue
from cloud.evidence import addendum, package, retention
from cloud.evidence.chain import Timeline
from cloud.evidence.errors import RetentionError
from cloud.evidence.keys import EvidenceKeys
from cloud.evidence.models import EvidenceRecord
from cloud.evidence.sealer import Sealer
from cloud.evidence.sealjob import Captured, KeyBytes, SealJob, place
from common import suite as suite_lib
from common.errors import PackageExists


class Vault(Protocol):
    """What archiving and deleting need from the oversight services
    (``cloud.oversight.Oversight`` is one; declared here so this layer does not import it)."""

    @property
    def catalogue(self) -> Catalogue: ...
    @property
    def evidence_keys(self) -> EvidenceKeys: ...
    @property
    def evidence_dir(self) -> Path: ...
    @property
    def suite(self) -> suite_lib.Suite: ...
    @property
    def sealer(self) -> Sealer: ...


async def archive(
    ov: Vault,
    *,
    session_id: str,
    business: str,
    operator_id: str,
    supervisor_id: str | None,
    outcome: str,
    timeline: Timeline,
    files: Sequence[package.EvidenceFile],
    customer: Mapping[str, str],
    now: dt.datetime,
    staging: Path | None = None,
    captured: Sequence[Captured] = (),
    alongside: Callable[[], Awaitable[object]] | None = None,
    identity: Mapping[str, Any] | None = None,
) -> EvidenceRecord:
    """Seal a finished session's evidence in the sealing worker, move it into place and
    index it.

    ``captured`` files are read from ``staging`` and checked by the worker
    (CapturedFileError). ``alongside`` runs in the index row's transaction (the workflow's
    close): both land or neither does, and then the package is removed again. SealerFailed
    if the worker died (nothing written); PackageExists if another finish got there first.
    """
    job = SealJob(
        session_id=session_id,
        business=business,
        operator={"teller_id": operator_id, "supervisor_id": supervisor_id},
        timeline=timeline,
        target=ov.evidence_dir / package.safe_name(session_id),
        now=now,
        # RFC 3161 wants serials unique per TSA; 63 random bits need no shared counter.
        serial=secrets.randbits(63),
        files=tuple(files),
        staging=staging,
        captured=tuple(captured),
        identity=dict(identity) if identity is not None else None,
    )
    await ov.sealer.seal(KeyBytes.of(ov.evidence_keys), job)
    try:
        directory = place(job)
    except OSError as err:
        raise PackageExists(f"session {session_id}: a package is already in place") from err
    key = ov.evidence_keys.data_key(timeline.suite, session_id)
    customer_blob = suite_lib.encrypt(
        timeline.suite,
        key,
        json.dumps(dict(customer)).encode(),
        aad=b"customer:" + session_id.encode(),
    )
    try:
        async with in_transaction():
            if alongside is not None:
                await alongside()
            return await EvidenceRecord.create(
                session_id=session_id,
                business=business,
                operator_id=operator_id,
                supervisor_id=supervisor_id,
                outcome=outcome,
                package_dir=str(directory),
                chain_head=timeline.head,
                customer_sealed=customer_blob,
                created_at=now,
                retain_until=retention.retain_until(ov.catalogue.get(business), now),
            )
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)
        raise


def customer_of(ov: Vault, record: EvidenceRecord) -> dict[str, Any]:
    if not record.customer_sealed:
        return {}
    key = ov.evidence_keys.data_key(ov.suite, record.session_id)
    aad = b"customer:" + record.session_id.encode()
    return dict(json.loads(suite_lib.decrypt(ov.suite, key, record.customer_sealed, aad=aad)))


async def delete(ov: Vault, record: EvidenceRecord, actor: str, now: dt.datetime) -> None:
    reason = retention.why_not_deletable(
        record.retain_until, record.legal_hold, record.deleted_at is not None, now
    )
    if reason:
        raise RetentionError(f"evidence of session {record.session_id}: {reason}")
    await asyncio.to_thread(shutil.rmtree, record.package_dir, ignore_errors=True)
    record.deleted_at = now
    record.customer_sealed = b""
    await record.save(update_fields=["deleted_at", "customer_sealed"])
    await audit.record(
        actor,
        "evidence_delete",
        record.session_id,
        now,
        business=record.business,
        chain_head=record.chain_head,
        retain_until=record.retain_until.isoformat(),
    )


async def purge_expired(ov: Vault, actor: str, now: dt.datetime) -> list[str]:
    """Delete every package whose retention has ended and is not on hold."""
    due = await EvidenceRecord.filter(
        retain_until__lte=now, legal_hold=False, deleted_at__isnull=True
    )
    for record in due:
        await delete(ov, record, actor, now)
    return [r.session_id for r in due]


async def add_recording(
    ov: Vault, session_id: str, reference: str, sha256: str, now: dt.datetime
) -> bool:
    """Put the call recording's reference and SHA-256 beside a sealed package (its
    ``recording.json`` addendum) when the recording was archived after sealing. False when
    there is no live package yet (sealing will take the recording then) or it already names
    the recording."""
    record = await EvidenceRecord.get_or_none(session_id=session_id, deleted_at__isnull=True)
    if record is None:
        return False
    directory = Path(record.package_dir)
    document = await asyncio.to_thread(package.read_document, directory)
    if (document["manifest"].get("identity") or {}).get("recording"):
        return False
    entry = addendum.recording_entry(reference, sha256)
    doc = addendum.build(document, entry, ov.evidence_keys.seal, now)
    await asyncio.to_thread(addendum.write, directory, doc)
    return True
