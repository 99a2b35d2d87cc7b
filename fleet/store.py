"""Commands in the database: queue, load as a ``fleet.lifecycle.Lifecycle``, record outcomes."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from tortoise import Tortoise

from fleet import lifecycle as lc
from fleet.models import FleetCommand

_JSON_FIELDS = frozenset({"result", "args"})


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
) -> list[str]:
    """Queue one command per terminal (ids returned); the sender delivers each when its
    terminal is online. One prepared INSERT by executemany: broadcasts are 10,000 rows."""
    c = lc.new(name, now, ttl)
    conn = Tortoise.get_connection("default")
    postgres = conn.capabilities.dialect == "postgres"
    columns = (
        "id", "terminal_id", "name", "args", "state", "created_at", "expires_at",
        "timeout_s", "deadline_at", "batch",
    )  # fmt: skip
    marks = [f"${i}" if postgres else "?" for i in range(1, len(columns) + 1)]
    if postgres:
        marks[columns.index("args")] += "::jsonb"
    names = ", ".join(f'"{col}"' for col in columns)
    sql = f'INSERT INTO "{FleetCommand._meta.db_table}" ({names}) VALUES ({", ".join(marks)})'
    body = json.dumps(dict(args), ensure_ascii=False)
    ids, rows = [], []
    for tid in terminal_ids:
        cid = uuid.uuid4().hex
        ids.append(cid)
        rows.append(
            [cid, tid, name, body, c.state.value, now, c.expires_at, c.timeout_s, c.deadline, batch]
        )
    if rows:
        await conn.execute_many(sql, rows)
    return ids


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


async def save(rows: list[FleetCommand], fields: tuple[str, ...]) -> None:
    """Write ``fields`` of many commands with one prepared UPDATE sent by executemany.

    For a broadcast to thousands of terminals this is an order of magnitude faster than
    the ORM's bulk update (which builds one CASE expression per field and batch).
    """
    if not rows:
        return
    conn = Tortoise.get_connection("default")
    postgres = conn.capabilities.dialect == "postgres"
    marks = [f"${i}" if postgres else "?" for i in range(1, len(fields) + 2)]
    cast = "::jsonb" if postgres else ""
    assignments = ", ".join(
        f'"{f}" = {m}{cast if f in _JSON_FIELDS else ""}'
        for f, m in zip(fields, marks, strict=False)
    )
    sql = f'UPDATE "{FleetCommand._meta.db_table}" SET {assignments} WHERE "id" = {marks[-1]}'
    values = []
    for row in rows:
        line = []
        for f in fields:
            v = getattr(row, f)
            line.append(
                json.dumps(v, ensure_ascii=False) if f in _JSON_FIELDS and v is not None else v
            )
        values.append([*line, row.id])
    await conn.execute_many(sql, values)
