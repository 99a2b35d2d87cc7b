"""The KPI and big-screen data sources, read from the teller-session service.

``cloud/sessions`` keeps each session's state transitions (``SessionTransition``) and the
live routing ``Board`` (queue and tellers). These adapters turn them into what
``cloud/ops`` consumes (``cloud.ops.feeds``), without that package knowing about sessions;
the app serves them to the ops routes as the ``Contacts`` and ``Live`` dependencies:

    contacts = sources.session_contacts
    live = sources.board_live(lambda: desk.board, clock)

Mapping (pure functions below): offered = first time queued (else requested); answered =
the teller's ``accept``; ended = ``close`` after wrap-up (talk + wrap-up = handle time), or
the ``abandon``/``fail`` time. First-contact resolution is the teller's outcome
(``POST /api/v1/teller/sessions/{id}/outcome``), satisfaction the terminal's ``rating``;
``None`` where none was given (the KPI counts only known ones).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable

from cloud.ops.feeds import LiveState
from cloud.ops.kpi import ContactRecord
from cloud.sessions.models import SessionTransition, TellerSession
from cloud.sessions.routing import Board


def contact_from_transitions(
    session_id: str,
    business: str,
    requested_at: dt.datetime,
    teller_id: str | None,
    transitions: Iterable[tuple[dt.datetime, str, str]],
    resolved: bool | None = None,
    rating: int | None = None,
) -> ContactRecord:
    """``transitions``: (at, event, to_state) oldest first."""
    offered = answered = ended = None
    for at, event, to_state in transitions:
        if offered is None and to_state == "queued":
            offered = at
        if answered is None and event == "accept":
            answered = at
        if event in ("close", "abandon", "fail") or (event == "hang_up" and ended is None):
            ended = at
    return ContactRecord(
        session_id,
        business,
        offered or requested_at,
        answered,
        ended,
        teller_id,
        resolved_first_contact=resolved if answered is not None else None,
        satisfaction=rating,
    )


async def session_contacts(since: dt.datetime, until: dt.datetime) -> list[ContactRecord]:
    """Every session requested in [since, until) as a contact record."""
    sessions = await TellerSession.filter(requested_at__gte=since, requested_at__lt=until)
    rows = (
        await SessionTransition.filter(session_id__in=[s.id for s in sessions])
        .order_by("at", "id")
        .values_list("session_id", "at", "event", "to_state")
    )
    by_session: dict[str, list[tuple[dt.datetime, str, str]]] = {}
    for session_id, at, event, to_state in rows:
        by_session.setdefault(session_id, []).append((at, event, to_state))
    return [
        contact_from_transitions(
            s.id,
            s.business,
            s.requested_at,
            s.teller_id,
            by_session.get(s.id, []),
            s.resolved,
            s.rating,
        )
        for s in sessions
    ]


def live_state(board: Board, now: float) -> LiveState:
    """The queue and teller states on a routing board (``now`` in the board's seconds)."""
    waits = [now - r.arrived for r in board.requests.values()]
    tellers = Counter(str(t.state) for t in board.tellers.values())
    return LiveState(len(waits), max(waits, default=0.0), dict(tellers))


def board_live(
    get_board: Callable[[], Board | None], clock: Callable[[], dt.datetime]
) -> Callable[[], Awaitable[LiveState]]:
    """A ``LiveSource`` over the desk's board (read on the event loop that owns it)."""

    async def live() -> LiveState:
        board = get_board()
        return live_state(board, clock().timestamp()) if board is not None else LiveState()

    return live
