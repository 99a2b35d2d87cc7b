"""Shadows in the database, and their delivery as ``shadow_delta`` commands.

A change to desired queues one ``shadow_delta`` command carrying the delta and the desired
version (replacing any still-queued older one); the terminal's reply carries what it now
reports. A terminal that comes back online with drift gets a fresh delta.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from common.wire import live_config
from common.wire import shadow as sh
from fleet import lifecycle as lc
from fleet.models import FleetCommand, ShadowDoc
from fleet.store import enqueue

DELTA = "shadow_delta"


def as_shadow(doc: ShadowDoc) -> sh.Shadow:
    return sh.Shadow(doc.desired, doc.desired_version, doc.reported, doc.reported_version)


def public(doc: ShadowDoc) -> dict[str, Any]:
    s = as_shadow(doc)
    return {
        "terminal_id": doc.terminal_id,
        "desired": s.desired,
        "desired_version": s.desired_version,
        "reported": s.reported,
        "reported_version": s.reported_version,
        "delta": sh.pending_delta(s),
        "in_sync": sh.in_sync(s),
        "desired_at": doc.desired_at,
        "reported_at": doc.reported_at,
    }


async def load(terminal_id: str) -> ShadowDoc:
    doc, _ = await ShadowDoc.get_or_create(terminal_id=terminal_id)
    return doc


async def _queue_delta(doc: ShadowDoc, now: dt.datetime) -> bool:
    delta = sh.pending_delta(as_shadow(doc))
    await FleetCommand.filter(
        terminal_id=doc.terminal_id, name=DELTA, state=lc.State.QUEUED.value
    ).update(state=lc.State.CANCELLED.value, finished_at=now)
    if not delta:
        return False
    await enqueue([doc.terminal_id], DELTA, {"version": doc.desired_version, "delta": delta}, now)
    return True


async def set_desired(terminal_id: str, patch: Mapping[str, Any], now: dt.datetime) -> ShadowDoc:
    doc = await load(terminal_id)
    before = as_shadow(doc)
    after = sh.set_desired(before, patch)
    # The agent checks the same schema; refusing here names the field before it travels.
    live_config.check(after.desired)
    if after is not before:
        doc.desired, doc.desired_version, doc.desired_at = after.desired, after.desired_version, now
        await doc.save()
        await _queue_delta(doc, now)
    return doc


def hooks(clock: Callable[[], dt.datetime]) -> tuple[Any, Any]:
    """(on_result for shadow_delta, on_online) for ``fleet.sender.CommandSender``."""

    async def on_result(row: FleetCommand) -> None:
        result = row.result or {}
        if row.state != lc.State.SUCCEEDED.value or not isinstance(result.get("reported"), dict):
            return
        doc = await load(row.terminal_id)
        after = sh.report(as_shadow(doc), result["reported"], int(result.get("version", 0)))
        doc.reported, doc.reported_version, doc.reported_at = (
            after.reported,
            after.reported_version,
            clock(),
        )
        await doc.save()

    async def on_online(terminal_ids: list[str]) -> None:
        for start in range(0, len(terminal_ids), 500):
            docs = await ShadowDoc.filter(terminal_id__in=terminal_ids[start : start + 500])
            for doc in docs:
                if sh.in_sync(as_shadow(doc)):
                    continue
                busy = await FleetCommand.filter(
                    terminal_id=doc.terminal_id, name=DELTA, state=lc.State.SENT.value
                ).exists()
                if not busy:
                    await _queue_delta(doc, clock())

    return on_result, on_online
