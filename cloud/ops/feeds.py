"""What KPIs, staffing and the big screen read: finished contacts and the live desk.

The ops package only consumes these; the teller-session service produces them
(``cloud.sessions.sources``) and the app passes them to the routes as the ``Contacts`` and
``Live`` dependencies (``cloud.api.deps``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from cloud.ops.kpi import ContactRecord


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the big screen shows besides terminals: the queue and the tellers right now."""

    queued: int = 0
    longest_wait_s: float = 0.0
    #: teller state (available, busy, wrap_up, break, ...) -> count
    tellers: Mapping[str, int] = field(default_factory=dict)


#: ``await contacts(since, until)``: contacts offered in [since, until).
ContactSource = Callable[[dt.datetime, dt.datetime], Awaitable[list[ContactRecord]]]
#: ``await live()``: the queue and teller states now.
LiveSource = Callable[[], Awaitable[LiveState]]


async def no_contacts(since: dt.datetime, until: dt.datetime) -> list[ContactRecord]:
    return []


async def no_live() -> LiveState:
    """The big screen without a teller desk: nobody queued, no tellers."""
    return LiveState()
