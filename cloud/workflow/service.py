"""Running a session's workflow against the database, in-process.

The workflow routes use these, and so can the teller-session service (``cloud/sessions``):
``start`` when a teller accepts a call, ``append_event`` for what the terminal reports
(recording segments with their digests, link quality), ``record_step`` as the teller walks
the steps, ``finish`` when the session ends — which seals the evidence package (with the
recording segments and images the caller passes) and queues the session for quality review.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509

from cloud.auth.masking import mask_fields
from cloud.evidence import identity, package
from cloud.evidence import service as evidence
from cloud.evidence.chain import Timeline
from cloud.evidence.models import EvidenceRecord
from cloud.evidence.package import EvidenceFile
from cloud.evidence.sealjob import Captured, CapturedFileError, staging_aad
from cloud.quality import service as quality
from cloud.workflow import engine, store
from cloud.workflow.errors import (
    PostingInDoubt,
    WorkflowClosed,
    WorkflowError,
    WorkflowIncomplete,
)
from cloud.workflow.models import CorePostingRow
from common import suite as suite_lib
from common.errors import PackageExists
from provisioning.service import revoked_serials


class Workbench(evidence.Vault, Protocol):
    """What a workflow needs from the oversight services (``cloud.oversight.Oversight``)."""

    @property
    def qa_salt(self) -> bytes: ...
    @property
    def device_issuers(self) -> tuple[x509.Certificate, ...]: ...


class NoSuchWorkflow(WorkflowError, LookupError):
    """No workflow was started for this session."""


async def start(
    ov: Workbench, session_id: str, business: str, teller_id: str, now: dt.datetime
) -> store.Loaded:
    wf = engine.start(ov.catalogue.get(business), session_id, teller_id, now)
    timeline = Timeline(ov.suite)
    timeline.append("session_start", teller_id, now, {"business": business})
    return await store.create(wf, timeline)


async def get(ov: Workbench, session_id: str) -> store.Loaded:
    loaded = await store.load(ov.catalogue, ov.suite, session_id)
    if loaded is None:
        raise NoSuchWorkflow(f"no workflow for session {session_id}")
    return loaded


async def append_event(
    ov: Workbench, session_id: str, kind: str, actor: str, now: dt.datetime, data: Mapping[str, Any]
) -> store.Loaded:
    """Put a non-step fact on the timeline (personal fields are masked first)."""
    loaded = await get(ov, session_id)
    loaded.timeline.append(kind, actor, now, mask_fields(data))
    return await store.save(loaded)


async def record_step(
    ov: Workbench,
    session_id: str,
    step: str,
    who: engine.Actor,
    now: dt.datetime,
    *,
    passed: bool = True,
    detail: Mapping[str, Any] | None = None,
    loaded: store.Loaded | None = None,
) -> store.Loaded:
    """The serving teller records a step; anyone else records it as the second person.
    Device steps pass only through ``cloud.workflow.steps`` (verified results, overrides).

    Pass ``loaded`` if the caller already read the workflow (saves a query; a stale copy
    fails the save with StaleWorkflow rather than overwriting).
    """
    loaded = loaded or await get(ov, session_id)
    wf, record = engine.record_step(
        loaded.workflow, step, who, now, passed=passed, detail=mask_fields(detail or {})
    )
    loaded.workflow = wf
    loaded.timeline.append("step", who.id, now, {**record.detail, "step": step, "passed": passed})
    return await store.save(loaded)


async def hand_over(
    ov: Workbench, session_id: str, teller_id: str, now: dt.datetime
) -> store.Loaded | None:
    """After a transfer, the accepting teller serves the session's workflow (None when the
    first teller never started one, or already serves it)."""
    loaded = await store.load(ov.catalogue, ov.suite, session_id)
    if loaded is None or loaded.workflow.teller_id == teller_id:
        return None
    previous = loaded.workflow.teller_id
    loaded.workflow = engine.hand_over(loaded.workflow, teller_id)
    loaded.timeline.append("handover", teller_id, now, {"from": previous, "to": teller_id})
    return await store.save(loaded)


def _staging(ov: Workbench, session_id: str) -> Path:
    return ov.evidence_dir / ".staging" / package.safe_name(session_id)


async def capture_file(
    ov: Workbench, session_id: str, name: str, role: str, data: bytes, actor: str, now: dt.datetime
) -> store.Loaded:
    """Keep a voucher image, e-signature or recording for the package, sealed at rest.

    The timeline commits to the file's digest at capture time, so a file swapped before
    the package is sealed is caught as surely as one swapped after.
    """
    if role not in package.ROLES:
        raise ValueError(f"role must be one of {sorted(package.ROLES)}")
    loaded = await get(ov, session_id)
    if loaded.workflow.outcome is not None:
        raise WorkflowClosed(f"session {session_id} already {loaded.workflow.outcome}")
    target = _staging(ov, session_id) / package.safe_name(name)
    if target.exists():
        raise WorkflowError(f"file {name} already captured")
    key = ov.evidence_keys.data_key(ov.suite, session_id)
    sealed = suite_lib.encrypt(ov.suite, key, data, aad=staging_aad(session_id, name))
    digest = suite_lib.digest(ov.suite, data).hex()
    loaded.timeline.append(
        "file_captured", actor, now, {"name": name, "role": role, "digest": digest}
    )
    loaded = await store.save(loaded)
    await asyncio.to_thread(_write, target, sealed)
    return loaded


def _write(target: Path, blob: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(blob)


async def _no_posting_in_doubt(session_id: str) -> None:
    """Money may have moved: a posting still pending at the core (the reconciler may yet
    see it applied) or applied already cannot be sealed as not done."""
    row = await CorePostingRow.get_or_none(session_id=session_id)
    if row is None or row.status not in ("pending", "applied"):
        return
    if row.status == "pending":
        raise PostingInDoubt(
            f"session {session_id}: the {row.business} posting is pending at the core; it "
            "cannot be closed as not done until the core has answered"
        )
    raise PostingInDoubt(
        f"session {session_id}: the core applied the {row.business} posting "
        f"({row.reference}); confirm the business, it cannot be closed as not done"
    )


async def finish(
    ov: Workbench,
    session_id: str,
    outcome: engine.Outcome,
    now: dt.datetime,
    *,
    files: Sequence[EvidenceFile] = (),
    customer: Mapping[str, str] | None = None,
    loaded: store.Loaded | None = None,
    require_core: bool = False,
    recording: Mapping[str, Any] | None = None,
) -> store.Loaded:
    """Close the workflow, seal its evidence package and queue it for quality review.

    ``completed`` fails (WorkflowIncomplete) while any required step is outstanding, and,
    for a business whose catalogue entry posts to the core, until the core has confirmed
    the posting (``cloud.workflow.corepost.confirm``). ``require_core`` False (a cloud with
    no core configured): such a business completes, and its timeline says it was not posted.
    ``recording``: the call recording's reference and SHA-256 if it is archived already
    (otherwise ``cloud.evidence.service.add_recording`` adds it beside the package later).
    """
    loaded = loaded or await get(ov, session_id)
    if await EvidenceRecord.exists(session_id=session_id):
        raise WorkflowClosed(f"session {session_id} already finished and sealed")
    wf = loaded.workflow
    unposted = False
    if outcome is engine.Outcome.COMPLETED:
        wf = engine.complete(wf, now)
        if wf.business.posting is not None and not await CorePostingRow.exists(
            session_id=session_id, status="applied"
        ):
            if require_core:
                raise WorkflowIncomplete(
                    f"session {session_id}: the core has not confirmed the "
                    f"{wf.business.code} posting (confirm the business first)"
                )
            unposted = True
    elif outcome is engine.Outcome.ABANDONED:
        if wf.business.posting is not None:
            await _no_posting_in_doubt(session_id)
        wf = engine.abandon(wf, now)
    elif wf.outcome is None:
        raise WorkflowError("a workflow is rejected by a failed step, not by finish()")
    # A copy: until the package is sealed and indexed, nothing of the close is kept.
    timeline = Timeline(loaded.timeline.suite, list(loaded.timeline.events))
    if unposted:
        timeline.append("core_not_posted", "core", now, {"reason": "no core configured"})
    timeline.append("session_end", wf.teller_id, now, {"outcome": wf.outcome})
    supervisor = next((r.actor for r in wf.records if r.step == "supervisor_authorisation"), None)
    captured = [
        Captured(str(e.data["name"]), str(e.data["role"]), str(e.data["digest"]))
        for e in timeline.events
        if e.kind == "file_captured"
    ]
    closed: list[store.Loaded] = []
    liveness = engine.liveness_score(wf)

    async def close() -> None:
        closed.append(await store.save(store.Loaded(wf, timeline, loaded.version)))
        await quality.consider(
            ov.catalogue,
            session_id=session_id,
            business=wf.business.code,
            teller_id=wf.teller_id,
            liveness_score=liveness,
            closed_at=now,
            salt=ov.qa_salt,
            overridden=engine.overridden(wf),
        )

    try:
        await evidence.archive(
            ov,
            session_id=session_id,
            business=wf.business.code,
            operator_id=wf.teller_id,
            supervisor_id=supervisor,
            outcome=str(wf.outcome),
            timeline=timeline,
            files=files,
            customer=customer or {},
            now=now,
            staging=_staging(ov, session_id),
            captured=captured,
            # The close, the review queue and the evidence index land together or not at all.
            alongside=close,
            identity=await _identity_section(ov, recording, now),
        )
    except CapturedFileError as err:
        raise WorkflowError(str(err)) from err
    except PackageExists as err:
        raise WorkflowClosed(str(err)) from err
    await asyncio.to_thread(shutil.rmtree, _staging(ov, session_id), ignore_errors=True)
    return closed[0]


async def _identity_section(
    ov: Workbench, recording: Mapping[str, Any] | None, now: dt.datetime
) -> dict[str, Any]:
    """What the package's identity proof is checked against offline: the terminals' CA,
    the certificates revoked by sealing time (a result signed after its certificate's
    revocation is refused at receipt and named by the verifier) and the recording."""
    return {
        "device_ca": [identity.certificate_pem(c) for c in ov.device_issuers],
        "revoked": identity.revocations_to_json(await revoked_serials(now)),
        "recording": dict(recording) if recording else None,
    }
