"""Load and save a workflow (and its evidence timeline) to the database.

Bridges the pure ``engine.Workflow`` and ``chain.Timeline`` values and the
``WorkflowState`` row; saving is a compare-and-set on ``version``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cloud.catalogue import Catalogue
from cloud.evidence.chain import Event, Timeline
from cloud.workflow import engine
from cloud.workflow.errors import WorkflowError
from cloud.workflow.models import WorkflowState
from common import suite as suite_lib


class StaleWorkflow(WorkflowError):
    """Another request changed the session first; reload and retry."""


@dataclass
class Loaded:
    workflow: engine.Workflow
    timeline: Timeline
    version: int


def _record_json(r: engine.StepRecord) -> dict[str, Any]:
    return {
        "step": r.step,
        "at": r.at.isoformat(),
        "actor": r.actor,
        "passed": r.passed,
        "detail": dict(r.detail),
    }


def _record(raw: dict[str, Any]) -> engine.StepRecord:
    at = dt.datetime.fromisoformat(raw["at"])
    return engine.StepRecord(raw["step"], at, raw["actor"], raw["passed"], raw["detail"])


async def create(wf: engine.Workflow, timeline: Timeline) -> Loaded:
    await WorkflowState.create(
        session_id=wf.session_id,
        business=wf.business.code,
        teller_id=wf.teller_id,
        started_at=wf.started_at,
        events=[e.to_json() for e in timeline.events],
    )
    return Loaded(wf, timeline, 0)


async def load(catalogue: Catalogue, suite: suite_lib.Suite, session_id: str) -> Loaded | None:
    row = await WorkflowState.get_or_none(session_id=session_id)
    if row is None:
        return None
    wf = engine.Workflow(
        row.session_id,
        catalogue.get(row.business),
        row.teller_id,
        row.started_at,
        tuple(_record(r) for r in row.records),
        engine.Outcome(row.outcome) if row.outcome else None,
        row.ended_at,
    )
    timeline = Timeline(suite, [Event.from_json(e) for e in row.events])
    return Loaded(wf, timeline, row.version)


async def save(loaded: Loaded) -> Loaded:
    wf = loaded.workflow
    changed = await WorkflowState.filter(session_id=wf.session_id, version=loaded.version).update(
        teller_id=wf.teller_id,
        records=[_record_json(r) for r in wf.records],
        events=[e.to_json() for e in loaded.timeline.events],
        outcome=wf.outcome.value if wf.outcome else None,
        ended_at=wf.ended_at,
        version=loaded.version + 1,
    )
    if changed != 1:
        raise StaleWorkflow(f"session {wf.session_id} changed concurrently")
    return Loaded(wf, loaded.timeline, loaded.version + 1)
