"""The rollout engine: runs ``fleet.rollout.step`` for every live rollout on a short beat.

Each beat reads the rollout's targets and the outcomes of its commands, lets the pure state
machine decide, queues the resulting install / rollback commands (``fleet.store``) and
writes back only the targets that changed. Install and rollback commands carry the batch
``<rollout id>-i`` / ``<rollout id>-r``, which is how their outcomes find their way back.
A plan with a business guard (``abort_alpha``, ``abort_review_points``) also counts, each
beat, the liveness outcomes on the terminals that took the new version (since each took it)
and in the control group (since the rollout started): the verdicts in the cloud's session
records and the quality reviewers' results on them. An abort by the guard is written to the
audit log (``fleet_rollout_abort``: which rate, both counts, the p-value and the level), which
the rollout API and the dashboard show.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tortoise.transactions import in_transaction

from cloud import ReviewItem, TellerSession, audit, fenced
from common import failpoints
from common.periodic import run_every
from fleet import lifecycle as lc
from fleet import model_outcomes as mo
from fleet import registry
from fleet import rollout as ro
from fleet.models import FleetCommand, RolloutDoc, RolloutTarget
from fleet.store import enqueue

log = logging.getLogger("cuntong.fleet.rollouts")

CHUNK = 500
LIVE = [ro.Phase.RUNNING.value, ro.Phase.ROLLING_BACK.value]
#: A command that never got an answer counts against the timeout threshold.
_OUTCOME = {
    lc.State.SUCCEEDED.value: "succeeded",
    lc.State.FAILED.value: "failed",
    lc.State.TIMED_OUT.value: "timed_out",
    lc.State.EXPIRED.value: "timed_out",
    lc.State.CANCELLED.value: "timed_out",
}
FINAL_STATES = list(_OUTCOME)
#: The audit log's actor and action for an abort by the business guard.
ENGINE_ACTOR = "rollout-engine"
GUARD_ABORT = "fleet_rollout_abort"

AbortHook = Callable[[RolloutDoc], Awaitable[None]]


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


async def create(
    name: str,
    group: str,
    action: str,
    args: dict[str, Any],
    plan: ro.Plan,
    now: dt.datetime,
    rollback_action: str | None = None,
    rollback_args: dict[str, Any] | None = None,
) -> RolloutDoc:
    """Resolve the group now (a saved query is frozen into the target list) and plan waves."""
    for command in (action, rollback_action):
        if command is not None and command not in lc.COMMANDS:
            raise ValueError(f"unknown command {command!r}")
    r = ro.plan_waves(await registry.members(group), plan)
    if not r.targets:
        raise ValueError(f"group {group!r} has no terminals")
    # One transaction: the engine must not see the rollout before all its targets (it
    # would plan the waves over the part inserted so far).
    async with in_transaction():
        doc = await RolloutDoc.create(
            id=uuid.uuid4().hex[:16],
            name=name,
            group=group,
            action=action,
            args=args,
            rollback_action=rollback_action if plan.rollback else None,
            rollback_args=rollback_args or {},
            plan=plan.to_dict(),
            phase=r.phase.value,
            waves=r.waves,
            created_at=now,
            updated_at=now,
        )
        await RolloutTarget.bulk_create(
            [
                RolloutTarget(
                    rollout_id=doc.id,
                    terminal_id=tid,
                    wave=t.wave,
                    state=t.state.value,
                    updated_at=now,
                )
                for tid, t in r.targets.items()
            ],
            batch_size=1000,
        )
    return doc


async def load(doc: RolloutDoc) -> ro.Rollout:
    rows = await RolloutTarget.filter(rollout_id=doc.id).values_list(
        "terminal_id", "wave", "state", "started_at"
    )
    targets = {tid: ro.Target(wave, ro.T(state), started) for tid, wave, state, started in rows}
    return ro.Rollout(ro.Phase(doc.phase), doc.wave, targets, doc.reason, doc.waves)


async def save(doc: RolloutDoc, before: ro.Rollout, after: ro.Rollout, now: dt.datetime) -> None:
    """Write the rollout and every target whose state changed (one UPDATE per new state)."""
    by_state: dict[tuple[ro.T, dt.datetime | None], list[str]] = {}
    for tid, t in after.targets.items():
        if before.targets[tid] != t:
            by_state.setdefault((t.state, t.started_at), []).append(tid)
    for (state, started), tids in by_state.items():
        for chunk in _chunks(tids):
            await RolloutTarget.filter(rollout_id=doc.id, terminal_id__in=chunk).update(
                state=state.value, started_at=started, updated_at=now
            )
    doc.phase, doc.wave, doc.reason, doc.updated_at = (
        after.phase.value,
        after.wave,
        after.reason[:256],
        now,
    )
    await doc.save(update_fields=["phase", "wave", "reason", "updated_at"])


async def business_counts(doc: RolloutDoc, r: ro.Rollout, plan: ro.Plan) -> ro.Business:
    """Liveness outcomes (decision, quality review): on targets that took the new version
    (since each did) and in the control group (since the rollout started, targets
    excluded)."""
    started = {
        tid: t.started_at
        for tid, t in r.targets.items()
        if t.state is ro.T.SUCCEEDED and t.started_at is not None
    }
    assert plan.control_group is not None  # Plan refuses a business guard without one
    control = set(await registry.members(plan.control_group)) - set(r.targets)
    ids = [*started, *control]
    rows = await TellerSession.filter(
        terminal_id__in=ids, requested_at__gte=doc.created_at, liveness__isnull=False
    ).values_list("id", "terminal_id", "requested_at", "liveness")
    reviewed: dict[str, bool] = {}
    for chunk in _chunks([sid for sid, *_ in rows]):
        reviewed.update(
            await ReviewItem.filter(session_id__in=chunk, passed__isnull=False).values_list(
                "session_id", "passed"
            )
        )
    treated, base = [], []
    for sid, tid, at, v in rows:
        o = mo.outcome(tid, at, v, reviewed.get(sid)) if isinstance(v, dict) else None
        if o is None:
            continue
        if tid in started and at >= started[tid]:
            treated.append(o)
        elif tid in control:
            base.append(o)
    return ro.Business(treated=mo.rates(treated), control=mo.rates(base))


async def record_guard_abort(
    doc: RolloutDoc, plan: ro.Plan, business: ro.Business, reason: str, now: dt.datetime
) -> None:
    """The audit entry of an abort by the business guard: every rate's test (the breached
    one first), both sides' counts, the p-values."""
    tests = ro.rate_tests(plan, business)
    breached = [t for t in tests if t.breached]
    t, c = business.treated, business.control
    await audit.record(
        ENGINE_ACTOR,
        GUARD_ABORT,
        doc.id,
        now,
        reason=reason,
        rate=breached[0].rate if breached else "manual_review_rate",
        rule="significance" if breached else "review_points",
        test=plan.abort_test if breached else None,
        control_group=plan.control_group,
        treated=t.to_dict() | {"passed": t.passed, "manual_review": t.manual_review,
                               "overturned": t.overturned},
        control=c.to_dict() | {"passed": c.passed, "manual_review": c.manual_review,
                               "overturned": c.overturned},
        tests=[x.to_dict() for x in breached + [x for x in tests if not x.breached]],
    )  # fmt: skip


class RolloutEngine:
    def __init__(
        self,
        kick: Callable[[], None],
        clock: Callable[[], dt.datetime],
        beat_s: float = 0.5,
    ) -> None:
        self.kick = kick
        self.clock = clock
        self.beat_s = beat_s
        self.on_abort: list[AbortHook] = []
        #: Command outcomes already applied, per rollout (ids of finished commands).
        self._seen: dict[str, set[str]] = {}
        #: Per rollout, outcomes finished before this were read on an earlier beat.
        self._since: dict[str, dt.datetime] = {}
        #: Per rollout, the state this engine last saved and the doc's ``updated_at`` then:
        #: while nobody else wrote the rollout, the next beat need not read 10,000 targets
        #: back (``create`` commits the doc and its targets together, so none is missed).
        self._saved: dict[str, tuple[dt.datetime, ro.Rollout]] = {}
        self._wake = asyncio.Event()
        self.lock = asyncio.Lock()

    def wake(self) -> None:
        """Outcomes were recorded: advance now rather than at the next beat."""
        self._wake.set()

    async def run(self) -> None:
        # A new term starts from the database: what this replica remembered from an
        # earlier term (or a beat refused at its end) may be stale by now.
        self._seen.clear()
        self._since.clear()
        self._saved.clear()
        await run_every(self.beat, self.beat_s, name="rollout beat", wake=self._wake, logger=log)

    async def beat(self) -> None:
        """Advance every live rollout once."""
        for doc in await RolloutDoc.filter(phase__in=LIVE):
            async with self.lock:
                await self.advance(doc)

    async def _outcomes(self, doc: RolloutDoc, r: ro.Rollout) -> tuple[ro.Rollout, list[ro.Action]]:
        seen = self._seen.setdefault(doc.id, set())
        query = FleetCommand.filter(
            batch__in=[f"{doc.id}-i", f"{doc.id}-r"], state__in=FINAL_STATES
        )
        since = self._since.get(doc.id)
        if since is not None:
            # Only what finished lately (with slack for writers whose clocks lag ours).
            query = query.filter(finished_at__gte=since - dt.timedelta(seconds=5))
        self._since[doc.id] = self.clock()
        rows = await query.values_list("id", "terminal_id", "batch", "state")
        finished = []
        for cid, tid, batch, state in rows:
            if cid in seen:
                continue
            seen.add(cid)
            expect = ro.T.RUNNING if batch.endswith("-i") else ro.T.ROLLING_BACK
            finished.append((tid, _OUTCOME[state], expect))
        return ro.record_all(r, finished)

    async def advance(self, doc: RolloutDoc) -> ro.Rollout:
        now = self.clock()
        saved = self._saved.get(doc.id)
        before = saved[1] if saved and saved[0] == doc.updated_at else await load(doc)
        r, actions = await self._outcomes(doc, before)
        plan = ro.Plan.from_dict(doc.plan)
        business = await business_counts(doc, r, plan) if plan.watches_business else None
        r, more = ro.step(r, plan, now, business)
        actions += more
        installs = [a.terminal_id for a in actions if a.kind == "install"]
        rollbacks = [a.terminal_id for a in actions if a.kind == "rollback"]
        if rollbacks and not doc.rollback_action:
            # No rollback command: the package's own slot fallback is all there is.
            r = ro.Rollout(
                r.phase,
                r.wave,
                {
                    tid: ro.Target(t.wave, ro.T.ROLLBACK_FAILED, t.started_at)
                    if tid in rollbacks
                    else t
                    for tid, t in r.targets.items()
                },
                r.reason,
                r.waves,
            )
        aborted = r.phase is not before.phase and r.phase in (
            ro.Phase.ROLLING_BACK,
            ro.Phase.ABORTED,
        )
        failpoints.hit("rollout-write")
        # Fenced (``cloud.fenced``): the beat's commands, targets, phase and audit entry
        # land together, and only while this replica still holds the lease at its epoch; a
        # paused old leader waking with a beat decided is refused (LeaseLost) and writes
        # nothing over what the new leader (or an operator's pause) wrote meanwhile.
        async with fenced():
            if installs:
                await enqueue(installs, doc.action, doc.args, now, batch=f"{doc.id}-i")
            if rollbacks and doc.rollback_action:
                await enqueue(
                    rollbacks, doc.rollback_action, doc.rollback_args, now, batch=f"{doc.id}-r"
                )
            await save(doc, before, r, now)
            if aborted:
                guard_reason = ro.business_breach(plan, business)[0]
                if business is not None and guard_reason and guard_reason == r.reason:
                    await record_guard_abort(doc, plan, business, r.reason, now)
        if installs or rollbacks:
            self.kick()
        self._saved[doc.id] = (doc.updated_at, r)
        if aborted:
            log.warning("rollout %s aborted: %s", doc.id, r.reason)
            for hook in self.on_abort:
                await hook(doc)
        if r.phase in ro.FINAL_PHASES:
            self._seen.pop(doc.id, None)
            self._since.pop(doc.id, None)
            self._saved.pop(doc.id, None)
        return r
