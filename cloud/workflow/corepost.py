"""Posting a business to the bank's core at the teller's confirm, and settling lost answers.

``confirm`` is the teller's "done" on a business whose catalogue entry posts: every step
must have passed; the posting is built (``cloud.workflow.posting``) and written to the
``core_posting`` table as *pending* before it is sent, then sent through the adapter
(timeouts, retries with backoff, one idempotency key from session and business). Then:

- the core confirms: its reference goes onto the evidence timeline (``core_posted``), the
  row is *applied* and the workflow completes (sealing the evidence package);
- the core refuses: the row is *refused* with the core's reason (``core_refused`` on the
  timeline); the workflow stays open, so the teller can fix the input and confirm again,
  or end the call as not done;
- no answer (every attempt timed out or failed): the row stays *pending* and the workflow
  open. ``reconcile_pending`` (run at start-up and every ``core_reconcile_s`` by the API)
  asks the core about each pending key: applied → settled as above; never arrived → posted
  again with the same body and key. The teller's next confirm then completes.

Because the row is written before the post leaves and every re-post carries the same key
and body, a process killed between the post and its answer applies the business once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tortoise.exceptions import IntegrityError

from cloud.workflow import engine, service, store
from cloud.workflow.errors import WorkflowClosed, WorkflowError
from cloud.workflow.models import CorePostingRow
from cloud.workflow.posting import Proofs, build_posting
from corebank import CoreBankClient, CorePending, CoreRefused, Posting, PostResult

log = logging.getLogger("cuntong.corepost")

#: A confirm slower than this logs where its time went (the posting's phases), so a stall
#: in production names its phase: the database, the core or the sealing.
SLOW_CONFIRM_S = 1.0


class _Phases:
    """Wall time per phase of one confirm (monotonic clock; for the slow-confirm log)."""

    def __init__(self) -> None:
        self.start = self.mark = time.perf_counter()
        self.spent: list[tuple[str, float]] = []

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        self.spent.append((phase, now - self.mark))
        self.mark = now

    def report(self, session_id: str) -> None:
        total = time.perf_counter() - self.start
        if total >= SLOW_CONFIRM_S:
            parts = ", ".join(f"{phase} {spent * 1e3:.0f} ms" for phase, spent in self.spent)
            log.warning("slow confirm of %s: %.0f ms (%s)", session_id, total * 1e3, parts)


PENDING, APPLIED, REFUSED = "pending", "applied", "refused"

#: Keys this process is posting right now: the reconciler leaves them to their confirm
#: (were it to ask meanwhile it would still be safe, same key and body, just wasted work;
#: another API process's reconciler may do exactly that).
_IN_FLIGHT: set[str] = set()


class CoreUnavailable(WorkflowError):
    """The business posts to the core, but this cloud has no core configured."""


@dataclass(frozen=True, slots=True)
class PostingStatus:
    """What the teller's page shows: 处理中 (pending), 成功 (applied), 失败 (refused)."""

    status: str  # "none" (the business posts nothing), pending, applied, refused
    reference: str | None = None
    reason: str | None = None
    detail: str | None = None

    @classmethod
    def of(cls, row: CorePostingRow | None) -> PostingStatus:
        if row is None:
            return cls("none")
        return cls(row.status, row.reference, row.reason, row.detail)


@dataclass(frozen=True, slots=True)
class Confirmed:
    status: PostingStatus
    loaded: store.Loaded


async def status(session_id: str) -> PostingStatus:
    return PostingStatus.of(await CorePostingRow.get_or_none(session_id=session_id))


async def confirm(
    ov: service.Workbench,
    core: CoreBankClient | None,
    session_id: str,
    fields: Mapping[str, Any],
    now: dt.datetime,
    *,
    customer: Mapping[str, str] | None = None,
    loaded: store.Loaded | None = None,
) -> Confirmed:
    """Post the business (once) and complete it when the core confirms; see the module."""
    phases = _Phases()
    try:
        return await _confirm(ov, core, session_id, fields, now, phases, customer, loaded)
    finally:
        phases.report(session_id)


async def _confirm(
    ov: service.Workbench,
    core: CoreBankClient | None,
    session_id: str,
    fields: Mapping[str, Any],
    now: dt.datetime,
    phases: _Phases,
    customer: Mapping[str, str] | None,
    loaded: store.Loaded | None,
) -> Confirmed:
    loaded = loaded or await service.get(ov, session_id)
    wf = loaded.workflow
    engine.complete(wf, now)  # every step passed, not closed yet (raises otherwise)
    spec = wf.business.posting
    if spec is None:
        loaded = await service.finish(
            ov, session_id, engine.Outcome.COMPLETED, now, customer=customer, loaded=loaded
        )
        return Confirmed(PostingStatus("none"), loaded)
    if core is None:
        raise CoreUnavailable(f"{wf.business.code} posts to the core; no core is configured")
    row = await CorePostingRow.get_or_none(session_id=session_id)
    phases.done("load")
    if row is None or row.status == REFUSED:
        posting = build_posting(wf, spec, fields, Proofs.from_records(wf.records))
        _IN_FLIGHT.add(posting.key)
        try:
            row = await _write_ahead(row, posting, now)
            phases.done("write-ahead row")
            result = await _send(core, posting)
            phases.done("core post")
            await _settle(ov, row, result, now)
            phases.done("answer on timeline and row")
        finally:
            _IN_FLIGHT.discard(posting.key)
    elif row.status == PENDING:
        await _reconcile_one(ov, core, row, now)
        phases.done("reconcile")
    if row.status != APPLIED:
        return Confirmed(PostingStatus.of(row), await service.get(ov, session_id))
    loaded = await service.finish(
        ov, session_id, engine.Outcome.COMPLETED, now, customer=customer, require_core=True
    )
    phases.done("finish and seal")
    return Confirmed(PostingStatus.of(row), loaded)


async def _write_ahead(
    row: CorePostingRow | None, posting: Posting, now: dt.datetime
) -> CorePostingRow:
    """The pending row, committed before the post leaves this process."""
    if row is not None:  # refused before: the same key again, with the corrected body
        row.body, row.status, row.reason, row.detail = posting.body(), PENDING, None, None
        await row.save()
        return row
    try:
        return await CorePostingRow.create(
            session_id=posting.session_id,
            business=posting.business,
            idem_key=posting.key,
            body=posting.body(),
            status=PENDING,
            created_at=now,
        )
    except IntegrityError as err:
        raise WorkflowError(f"session {posting.session_id} is being confirmed already") from err


async def _send(core: CoreBankClient, posting: Posting) -> PostResult | CoreRefused | None:
    try:
        return await core.post(posting)
    except CoreRefused as err:
        return err
    except CorePending as err:
        log.warning("core posting %s has no answer yet: %s", posting.key, err)
        return None


async def _settle(
    ov: service.Workbench,
    row: CorePostingRow,
    result: PostResult | CoreRefused | None,
    now: dt.datetime,
) -> None:
    """Put the core's answer on the timeline first, then on the row (a crash in between
    is settled again by the reconciler, which does not add the reference twice)."""
    if result is None:
        return
    if isinstance(result, CoreRefused):
        await _on_timeline(ov, row, "core_refused", now, {"reason": result.reason})
        row.status, row.reason, row.detail = REFUSED, result.reason, result.detail[:256]
    else:
        data = {"reference": result.reference, "kind": row.body["kind"], "key": row.idem_key}
        await _on_timeline(ov, row, "core_posted", now, data)
        row.status, row.reference = APPLIED, result.reference
    row.settled_at = now
    await row.save()


async def _on_timeline(
    ov: service.Workbench, row: CorePostingRow, kind: str, now: dt.datetime, data: dict[str, Any]
) -> None:
    for _ in range(3):  # a step or note may land at the same moment: reload and go again
        loaded = await service.get(ov, row.session_id)
        if loaded.workflow.outcome is not None:
            return  # sealed already; the row keeps the answer
        if kind == "core_posted" and any(
            e.kind == kind and e.data.get("key") == row.idem_key for e in loaded.timeline.events
        ):
            return
        loaded.timeline.append(kind, "core", now, {**data, "business": row.business})
        try:
            await store.save(loaded)
            return
        except store.StaleWorkflow:
            continue
    raise store.StaleWorkflow(f"session {row.session_id}: could not record the core's answer")


async def _reconcile_one(
    ov: service.Workbench, core: CoreBankClient, row: CorePostingRow, now: dt.datetime
) -> None:
    try:
        found = await core.reconcile(row.idem_key)
    except CorePending:
        return  # the core is still out of reach; the next round asks again
    if found is None:  # the post never arrived: sending it again is safe (same key, body)
        posting = Posting(**{k: v for k, v in row.body.items() if k != "idempotency_key"})
        if posting.key != row.idem_key:
            raise WorkflowClosed(f"core_posting {row.session_id}: stored body and key disagree")
        found_or_answer = await _send(core, posting)
    else:
        found_or_answer = dataclasses.replace(found, duplicate=True)
    await _settle(ov, row, found_or_answer, now)


async def reconcile_pending(ov: service.Workbench, core: CoreBankClient, now: dt.datetime) -> int:
    """Settle every pending posting (the reconciliation job's beat); returns how many
    were settled."""
    settled = 0
    for row in await CorePostingRow.filter(status=PENDING).order_by("created_at"):
        if row.idem_key in _IN_FLIGHT:
            continue
        await _reconcile_one(ov, core, row, now)
        settled += row.status != PENDING
    if settled:
        log.info("reconciled %d core posting(s)", settled)
    return settled
