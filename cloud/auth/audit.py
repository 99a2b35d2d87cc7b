"""Writing and reading the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cloud.auth.models import AuditEntry


async def record(
    actor: str, action: str, target: str, now: dt.datetime, **detail: Any
) -> AuditEntry:
    """Append one entry: ``actor`` did ``action`` to ``target`` (e.g. reveal id_number)."""
    return await AuditEntry.create(at=now, actor=actor, action=action, target=target, detail=detail)


async def latest(action: str, targets: list[str]) -> dict[str, dict[str, Any]]:
    """The newest ``action`` entry's detail per target, for the targets that have one."""
    rows = await AuditEntry.filter(action=action, target__in=targets).order_by("at", "id")
    return {row.target: dict(row.detail) | {"at": row.at.isoformat()} for row in rows}
