"""Per-model-version liveness outcomes from the cloud's session and quality records.

Reads every teller session with a liveness verdict in a time range, joins the quality
reviewer's verdict when the session was scored, resolves every fleet group's members and hands
them to the pure `fleet.model_outcomes.summarise`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cloud import ReviewItem, TellerSession
from fleet import registry
from fleet.model_outcomes import Outcome, outcome, summarise
from fleet.models import Group


async def outcomes(since: dt.datetime, until: dt.datetime) -> list[Outcome]:
    rows = await TellerSession.filter(
        requested_at__gte=since, requested_at__lt=until, liveness__isnull=False
    ).values_list("id", "terminal_id", "requested_at", "liveness")
    reviewed = dict(
        await ReviewItem.filter(
            session_id__in=[r[0] for r in rows], passed__isnull=False
        ).values_list("session_id", "passed")
    )
    found = (outcome(tid, at, v, reviewed.get(sid)) for sid, tid, at, v in rows if v)
    return [o for o in found if o is not None]


async def report(since: dt.datetime, until: dt.datetime, period: dt.timedelta) -> dict[str, Any]:
    """Rates per model version, group and period between `since` and `until`."""
    groups = {
        g: await registry.members(g) for g in await Group.all().values_list("name", flat=True)
    }
    rows = summarise(await outcomes(since, until), groups, period)
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "period_s": int(period.total_seconds()),
        "rows": rows,
    }
