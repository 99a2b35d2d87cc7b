"""Commands in the database: queue, load as a ``fleet.lifecycle.Lifecycle``, record outcomes."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient

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
    await update_many(fields, [[*(getattr(r, f) for f in fields), r.id] for r in rows])


async def update_many(
    fields: tuple[str, ...],
    values: list[list[Any]],
    only_in: lc.State | None = None,
    conn: BaseDBAsyncClient | None = None,
) -> None:
    """``save`` for plain value rows: each is ``[*fields, id]``; with ``only_in``, a command
    that has left that state meanwhile (cancelled, swept) is left alone. ``conn``: inside
    that transaction (the sender's fenced one)."""
    if not values:
        return
    conn = conn or Tortoise.get_connection("default")
    postgres = conn.capabilities.dialect == "postgres"
    marks = [f"${i}" if postgres else "?" for i in range(1, len(fields) + 3)]
    cast = "::jsonb" if postgres else ""
    assignments = ", ".join(
        f'"{f}" = {m}{cast if f in _JSON_FIELDS else ""}'
        for f, m in zip(fields, marks, strict=False)
    )
    where = f'"id" = {marks[len(fields)]}'
    if only_in is not None:
        where += f' AND "state" = {marks[len(fields) + 1]}'
    sql = f'UPDATE "{FleetCommand._meta.db_table}" SET {assignments} WHERE {where}'
    json_at = [i for i, f in enumerate(fields) if f in _JSON_FIELDS]
    for line in values:
        for i in json_at:
            if line[i] is not None:
                line[i] = json.dumps(line[i], ensure_ascii=False)
        if only_in is not None:
            line.append(only_in.value)
    await conn.execute_many(sql, values)


async def lock_open(
    ids: list[str], conn: BaseDBAsyncClient, states: tuple[lc.State, ...] = (lc.State.SENT,)
) -> None:
    """Inside ``conn``'s transaction, take the write lock on those of ``ids`` still in
    ``states`` before reading them: the rows on PostgreSQL, the database on SQLite (whose
    deferred transaction would otherwise read first and fail to upgrade). Another replica
    recording the same replies (or sweeping them) waits here, then finds them settled."""
    if not ids:
        return
    postgres = conn.capabilities.dialect == "postgres"
    n = len(states)
    marks = [f"${i}" if postgres else "?" for i in range(1, len(ids) + n + 1)]
    table = FleetCommand._meta.db_table
    sql = (
        f'UPDATE "{table}" SET "state" = "state" WHERE "state" IN ({", ".join(marks[:n])}) '
        f'AND "id" IN ({", ".join(marks[n:])})'
    )
    await conn.execute_query(sql, [*(s.value for s in states), *ids])
