"""Commands in the database: queue, load as a ``fleet.lifecycle.Lifecycle``, record outcomes."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from fleet import lifecycle as lc
from fleet.models import FleetCommand


def as_lifecycle(row: FleetCommand) -> lc.Lifecycle:
    return lc.Lifecycle(
        lc.State(row.state),
        row.created_at,
        row.expires_at,
        row.timeout_s,
        row.sent_at,
        row.finished_at,
    )


def apply(row: FleetCommand, c: lc.Lifecycle) -> None:
    row.state = c.state.value
    row.sent_at = c.sent_at
    row.finished_at = c.finished_at
    row.deadline_at = c.deadline


async def enqueue(
    terminal_ids: Iterable[str],
    name: str,
    args: Mapping[str, Any],
    now: dt.datetime,
    ttl: dt.timedelta | None = None,
    batch: str | None = None,
) -> list[FleetCommand]:
    """Queue one command per terminal; the sender delivers each when its terminal is online."""
    rows = []
    for tid in terminal_ids:
        c = lc.new(name, now, ttl)
        row = FleetCommand(
            id=uuid.uuid4().hex,
            terminal_id=tid,
            name=name,
            args=dict(args),
            created_at=now,
            expires_at=c.expires_at,
            timeout_s=c.timeout_s,
            batch=batch,
        )
        apply(row, c)
        rows.append(row)
    await FleetCommand.bulk_create(rows, batch_size=1000)
    return rows


def public(row: FleetCommand) -> dict[str, Any]:
    return {
        "id": row.id,
        "terminal_id": row.terminal_id,
        "name": row.name,
        "args": row.args,
        "state": row.state,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "sent_at": row.sent_at,
        "finished_at": row.finished_at,
        "result": row.result,
        "batch": row.batch,
    }
