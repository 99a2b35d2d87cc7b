"""KPIs and the big screen read from the teller-session service's own records."""

from __future__ import annotations

import datetime as dt

from cloud.api import deps
from cloud.catalogue import load_catalogue
from cloud.sessions import sources
from cloud.sessions.models import SessionTransition, TellerSession
from cloud.sessions.routing import Board, TellerState
from cloud.sessions.skills import Skills, business_table
from tests.oversight.conftest import Cloud


def test_routing_uses_the_workflow_catalogue() -> None:
    catalogue = load_catalogue()
    table = business_table()
    assert set(table) == set(catalogue.businesses)
    for code, business in table.items():
        assert business.group == catalogue.get(code).group
        assert business.high_risk == (catalogue.get(code).risk == "high")


async def _session(
    sid: str,
    t0: dt.datetime,
    steps: list[tuple[float, str, str]],
    teller: str | None,
    **reported: object,
) -> None:
    await TellerSession.create(
        id=sid, terminal_id="T-1", business="card_loss", language="cmn", state=steps[-1][2],
        teller_id=teller, requested_at=t0, updated_at=t0, **reported,
    )  # fmt: skip
    prev = None
    for offset, event, to_state in steps:
        await SessionTransition.create(
            session_id=sid, at=t0 + dt.timedelta(seconds=offset), event=event,
            from_state=prev, to_state=to_state, teller_id=teller,
        )  # fmt: skip
        prev = to_state


async def test_kpis_from_session_transitions_and_live_board(cloud: Cloud) -> None:
    t0 = cloud.clock().replace(hour=8)
    handled = [
        (0, "request", "requested"),
        (1, "enqueue", "queued"),
        (9, "offer", "offered"),
        (12, "accept", "connected"),
        (312, "hang_up", "wrap-up"),
        (342, "close", "closed"),
    ]
    await _session("a", t0, handled, "alice", resolved=True, rating=4)
    gone = [(0, "request", "requested"), (1, "enqueue", "queued"), (41, "abandon", "abandoned")]
    await _session("b", t0 + dt.timedelta(minutes=1), gone, None)
    records = await sources.session_contacts(t0, t0 + dt.timedelta(hours=1))
    by_id = {r.session_id: r for r in records}
    assert (
        by_id["a"].wait_s == 11 and by_id["a"].handle_s == 330 and by_id["a"].teller_id == "alice"
    )
    assert by_id["b"].answered_at is None and by_id["b"].wait_s == 40
    assert (by_id["a"].resolved_first_contact, by_id["a"].satisfaction) == (True, 4)
    assert (by_id["b"].resolved_first_contact, by_id["b"].satisfaction) == (None, None)

    board = Board()
    now = 1000.0
    board.add_teller("alice", Skills.of({"card_loss": 3}, {"cmn"}), now)
    board.add_teller("bob", Skills.of({"card_loss": 3}, {"cmn"}), now)
    board.set_state("bob", TellerState.BREAK, now)
    board.enqueue("r1", "card_loss", "cmn", now - 30)
    cloud.app.dependency_overrides[deps.contacts] = lambda: sources.session_contacts
    live = sources.board_live(lambda: board, lambda: dt.datetime.fromtimestamp(now, dt.UTC))
    cloud.app.dependency_overrides[deps.live] = lambda: live

    sup = await cloud.client("sup", "supervisor")
    kpis = (await sup.get("/api/v1/ops/kpis")).json()
    assert kpis["overall"]["offered"] == 2 and kpis["overall"]["abandonment"] == 0.5
    assert kpis["tellers"]["alice"]["aht_s"] == 330
    assert kpis["overall"]["fcr"] == 1.0 and kpis["overall"]["satisfaction"] == 4.0
    view = (await sup.get("/api/v1/ops/overview")).json()
    assert view["queue_now"] == 1 and view["longest_wait_s"] == 30
    assert view["tellers"] == {"offline": 1, "break": 1}
