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
