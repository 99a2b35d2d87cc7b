"""The desk drives state, routing and media together; participants see only messages."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from cloud.media.errors import JanusError
from cloud.media.nodes import Node
from cloud.sessions.errors import RoutingError
from cloud.sessions.grants import TurnConfig
from cloud.sessions.routing import TellerState
from cloud.sessions.skills import Skills
from cloud.sessions.state import Event, State
from tests.teller.desk_rig import T0, A, rig


async def test_whole_call() -> None:
    r = rig("t1", turn=TurnConfig("turn-secret", ("turn:turn.example:3478",)))
    await r.desk.request("s1", "T0042", "cash_deposit", "cmn", elderly=True)
    (queued,) = r.messages("terminal:T0042", "queued")
    assert queued["position"] == 1
    (offer,) = r.messages("teller:t1", "offer")
    assert (offer["session"], offer["elderly"], offer["terminal"]) == ("s1", True, "T0042")

    r.advance(5)
    grant = await r.desk.accept("t1", "s1")
    (connect,) = r.messages("terminal:T0042", "connect")
    assert (connect["role"], connect["feed"], connect["peer_feed"]) == (
        "customer",
        "customer",
        "teller-t1",
    )
    assert (grant.role, grant.feed, grant.peer_feed, grant.room) == (
        "teller",
        "teller-t1",
        "customer",
        "s1",
    )
    assert connect["token"] != grant.token and r.media.tokens == {connect["token"], grant.token}
    assert connect["janus_url"] == "http://j1/janus" and "s1" in r.media.rooms
    (ice,) = connect["ice_servers"]
    assert ice["username"].endswith(":T0042") and ice["urls"] == ["turn:turn.example:3478"]

    r.advance(300)
    await r.desk.hang_up("s1", "customer pressed end")
    assert r.media.tokens == set() and r.media.closed == ["s1"] and r.after == ["s1@j1"]
    assert r.messages("teller:t1", "ended") and r.messages("terminal:T0042", "ended")
    assert r.desk.board.tellers["t1"].state is TellerState.WRAP_UP
    r.advance(60)
    await r.desk.finish_wrap_up("t1")
    assert r.desk.board.tellers["t1"].state is A
    assert "s1" not in r.desk.calls
    assert r.events("s1") == [
        Event.REQUEST,
        Event.ENQUEUE,
        Event.OFFER,
        Event.ACCEPT,
        Event.HANG_UP,
        Event.CLOSE,
    ]
    assert r.records[-1].to_state is State.CLOSED
    assert r.desk.times.mean("cash_deposit") == 360  # connected → closed, learned


async def test_unanswered_offer_moves_on_and_declines_too() -> None:
    r = rig("t1", "t2", "t3")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    assert r.messages("teller:t1", "offer")
    r.advance(20)  # the offer timeout
    await r.desk.tick()
    assert r.messages("teller:t1", "offer_withdrawn")[0]["cause"] == "timeout"
    assert r.messages("teller:t2", "offer")
    await r.desk.decline("t2", "s1")
    assert r.messages("teller:t3", "offer")
    assert r.events("s1")[2:] == [
        Event.OFFER,
        Event.OFFER_TIMEOUT,
        Event.OFFER,
        Event.DECLINE,
        Event.OFFER,
    ]
    with pytest.raises(RoutingError):
        await r.desk.accept("t1", "s1")  # t3 holds the offer, not t1


async def test_customer_leaving_withdraws_the_offer() -> None:
    r = rig("t1")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await r.desk.abandon("s1")
    assert r.messages("teller:t1", "offer_withdrawn")[0]["cause"] == "customer left"
    assert r.events("s1")[-1] is Event.ABANDON and "s1" not in r.desk.calls
    await r.desk.request("s2", "T2", "pension", "cmn", elderly=False)
    assert r.messages("teller:t1", "offer")[-1]["session"] == "s2"


async def test_teller_logging_out_requeues_and_queue_positions_are_told() -> None:
    r = rig("t1")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await r.desk.request("s2", "T2", "pension", "cmn", elderly=False)
    await r.desk.teller_state("t1", TellerState.OFFLINE)
    assert r.events("s1")[-1] is Event.DECLINE
    assert r.records[-1].cause == "teller went offline"
    r.inbox.clear()
    await r.desk.announce_positions()
    positions = {m["session"]: m["expected_wait"] for _, m in r.inbox}
    assert positions == {"s1": None, "s2": None}  # nobody on duty: no promise


async def test_media_failure_fails_the_session_and_frees_the_teller() -> None:
    r = rig("t1")
    r.media.broken = True
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    with pytest.raises(JanusError):
        await r.desk.accept("t1", "s1")
    assert r.events("s1")[-2:] == [Event.ACCEPT, Event.FAIL]
    assert r.messages("terminal:T1", "failed") and r.messages("teller:t1", "failed")
    assert r.desk.board.tellers["t1"].state is A and "s1" not in r.desk.calls


async def test_unknown_and_duplicate_sessions_are_refused() -> None:
    r = rig("t1")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    with pytest.raises(RoutingError):
        await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    with pytest.raises(RoutingError):
        await r.desk.hang_up("nope", "x")
    with pytest.raises(RoutingError):
        await r.desk.request("s2", "T1", "mortgage", "cmn", elderly=False)
    assert "s2" not in r.desk.calls


async def test_run_ticks_and_announces_until_cancelled() -> None:
    r = rig()  # nobody on duty: the request waits
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    r.inbox.clear()
    task = asyncio.create_task(r.desk.run(tick_every=0.01, announce_every=0.03))
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    told = len(r.messages("terminal:T1", "queued"))
    assert 3 <= told <= 10
    await asyncio.sleep(0.05)
    assert len(r.messages("terminal:T1", "queued")) == told


async def test_operations_do_not_interleave() -> None:
    r = rig("t1")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    opened = asyncio.Event()
    release = asyncio.Event()
    slow_open = r.media.open_room

    async def open_room(room: str) -> Node:
        opened.set()
        await release.wait()
        return await slow_open(room)

    r.media.open_room = open_room  # type: ignore[method-assign]
    accepting = asyncio.create_task(r.desk.accept("t1", "s1"))
    await opened.wait()
    hanging_up = asyncio.create_task(r.desk.hang_up("s1", "customer ended"))
    await asyncio.sleep(0.01)
    assert not hanging_up.done()  # waits for the accept to finish
    release.set()
    await accepting
    await hanging_up
    assert r.events("s1")[-2:] == [Event.ACCEPT, Event.HANG_UP]
    assert r.media.rooms == set() and r.media.tokens == set()


async def test_transfer_keeps_the_customer_in_the_room_for_the_next_teller() -> None:
    r = rig("t1")
    loans = Skills.of({"agri_loan": 5}, {"cmn"})
    r.desk.board.add_teller("loans", loans, T0.timestamp())
    await r.desk.request("s1", "T1", "cash_deposit", "cmn", elderly=False)
    first = await r.desk.accept("t1", "s1")
    (customer,) = r.messages("terminal:T1", "connect")
    r.advance(120)
    await r.desk.transfer("t1", "s1", "agri_loan", "cmn", "wants a loan")
    assert r.messages("teller:t1", "ended")[0]["cause"] == "transferred"
    assert r.desk.board.tellers["t1"].state is TellerState.WRAP_UP
    assert r.media.tokens == {customer["token"]} and r.media.rooms == {"s1"}
    assert r.messages("terminal:T1", "queued")[-1]["expected_wait"] is None  # nobody on duty
    await r.desk.teller_state("loans", A)
    assert r.messages("teller:loans", "offer")[0]["business"] == "agri_loan"
    second = await r.desk.accept("loans", "s1")
    again = r.messages("terminal:T1", "connect")[-1]
    assert (again["token"], again["peer_feed"]) == (customer["token"], "teller-loans")
    assert second.feed == "teller-loans" and second.token != first.token
    assert r.media.tokens == {customer["token"], second.token}
    assert r.events("s1")[3:] == [
        Event.ACCEPT,
        Event.TRANSFER,
        Event.ENQUEUE,
        Event.OFFER,
        Event.ACCEPT,
    ]
    await r.desk.finish_wrap_up("t1")
    assert r.desk.board.tellers["t1"].state is A
    await r.desk.hang_up("s1", "done")
    assert r.media.tokens == set() and r.media.closed == ["s1"]
    with pytest.raises(RoutingError):
        await r.desk.transfer("loans", "s1", "pension", "cmn", "too late")


async def test_customer_leaving_during_transfer_frees_the_room() -> None:
    r = rig("t1")
    await r.desk.request("s1", "T1", "cash_deposit", "cmn", elderly=False)
    await r.desk.accept("t1", "s1")
    with pytest.raises(RoutingError):
        await r.desk.transfer("t1", "s1", "mortgage", "cmn", "no such business")
    with pytest.raises(RoutingError):
        await r.desk.transfer("t1", "s1", "insurance", "klingon", "no such language")
    await r.desk.transfer("t1", "s1", "insurance", "cmn", "wants insurance")
    await r.desk.abandon("s1")
    assert r.media.rooms == set() and r.media.tokens == set()
    assert r.events("s1")[-1] is Event.ABANDON


async def test_teller_state_changes_respect_calls() -> None:
    r = rig("t1")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await r.desk.accept("t1", "s1")
    for state in (TellerState.OFFLINE, TellerState.AVAILABLE, TellerState.BUSY):
        with pytest.raises(RoutingError):
            await r.desk.teller_state("t1", state)  # in a call: end it first
    with pytest.raises(RoutingError):
        await r.desk.finish_wrap_up("t1")  # not in wrap-up yet
    with pytest.raises(RoutingError):
        await r.desk.teller_state("ghost", TellerState.BREAK)
    await r.desk.hang_up("s1", "done")
    await r.desk.teller_state("t1", TellerState.BREAK)  # leaving wrap-up closes the session
    assert r.events("s1")[-1] is Event.CLOSE and "s1" not in r.desk.calls
    assert r.desk.board.tellers["t1"].state is TellerState.BREAK


async def test_wrap_up_limit_closes_the_session_on_tick() -> None:
    r = rig("t1")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await r.desk.accept("t1", "s1")
    await r.desk.hang_up("s1", "done")
    r.advance(120)
    await r.desk.tick()
    assert r.records[-1].cause == "wrap-up time limit" and r.events("s1")[-1] is Event.CLOSE
    assert r.desk.board.tellers["t1"].state is A


@pytest.mark.parametrize(("accepted", "last"), [(False, Event.ABANDON), (True, Event.HANG_UP)])
async def test_customer_ended_picks_abandon_or_hang_up(accepted: bool, last: Event) -> None:
    r = rig("t1")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    if accepted:
        await r.desk.accept("t1", "s1")
    await r.desk.customer_ended("s1")
    assert r.events("s1")[-1] is last
    assert r.media.rooms == set() and r.media.tokens == set()


async def test_a_supervisor_listens_in_on_live_calls_only() -> None:
    r = rig("t1")
    await r.desk.request("s1", "T1", "cash_deposit", "cmn", elderly=True)
    with pytest.raises(RoutingError):  # queued, not a call yet
        await r.desk.join_guest("s1", "sup")
    teller = await r.desk.accept("t1", "s1")
    with pytest.raises(RoutingError):
        await r.desk.join_guest("s1", "t1")  # the serving teller is already in it
    guest = await r.desk.join_guest("s1", "sup")
    assert (guest.role, guest.feed, guest.peer_feed, guest.watch) == (
        "guest", "guest-sup", "customer", (teller.feed,),
    )  # fmt: skip
    assert guest.message()["watch"] == [teller.feed] and guest.token in r.media.tokens
    told = {"type": "guest", "session": "s1", "guest": "sup", "present": True}
    assert r.messages("terminal:T1", "guest") == [told] == r.messages("teller:t1", "guest")
    assert [c["guests"] for c in r.desk.live_calls()] == [["sup"]]
    again = await r.desk.join_guest("s1", "sup")  # a reloaded page: the old token goes
    assert guest.token not in r.media.tokens and again.token in r.media.tokens
    await r.desk.leave_guest("s1", "sup")
    assert again.token not in r.media.tokens
    assert r.messages("teller:t1", "guest")[-1]["present"] is False
    with pytest.raises(RoutingError):
        await r.desk.leave_guest("s1", "sup")
    # Hang-up revokes a guest's token with everyone else's.
    last = await r.desk.join_guest("s1", "sup")
    await r.desk.hang_up("s1", "done")
    assert last.token not in r.media.tokens and r.desk.live_calls() == []


async def test_a_transfer_ends_the_listening_in() -> None:
    r = rig("t1", "t2")
    await r.desk.request("s1", "T1", "cash_deposit", "cmn", elderly=False)
    await r.desk.accept("t1", "s1")
    guest = await r.desk.join_guest("s1", "sup")
    await r.desk.transfer("t1", "s1", "pension", "cmn", "pension question")
    assert guest.token not in r.media.tokens
    assert r.desk.live_calls() == []  # queued again: the supervisor joins the next teller anew


async def test_a_ring_back_is_marked_on_its_offers_only_by_its_own_terminal_while_waiting() -> None:
    """A waiting customer chose 有空了叫我: every offer of the session says ``ring_back``
    (a teller already holding its offer is told at once); another terminal, an unknown
    session, a call in progress and a transferred customer (in the room) change nothing."""
    r = rig("t1")
    await r.desk.teller_state("t1", TellerState.BREAK)  # nobody on duty: s1 and s2 wait
    await r.desk.request("s1", "T1", "cash_deposit", "cmn", elderly=False)
    await r.desk.request("s2", "T2", "cash_deposit", "cmn", elderly=False)
    with pytest.raises(RoutingError, match="not a live session of T2"):
        await r.desk.ring_back("s1", "T2")  # another terminal's session
    with pytest.raises(RoutingError, match="not a live session"):
        await r.desk.ring_back("nope", "T1")
    assert not r.desk.calls["s1"].ring_back
    await r.desk.ring_back("s1", "T1")
    await r.desk.ring_back("s1", "T1")  # a redelivery: no change
    await r.desk.teller_state("t1", A)
    (offer,) = r.messages("teller:t1", "offer")
    assert (offer["session"], offer["ring_back"]) == ("s1", True)
    assert r.desk.call_facts("s1")["ring_back"] is True
    await r.desk.accept("t1", "s1")
    with pytest.raises(RoutingError, match="connected, not waiting"):
        await r.desk.ring_back("s1", "T1")
    await r.desk.hang_up("s1", "done")
    await r.desk.finish_wrap_up("t1")
    # s2 is offered now, an ordinary request; its customer chooses ring-back while offered
    assert r.messages("teller:t1", "offer")[-1] | {"expires": 0} == {
        "type": "offer", "session": "s2", "terminal": "T2", "business": "cash_deposit",
        "language": "cmn", "elderly": False, "ring_back": False, "expires": 0,
    }  # fmt: skip
    await r.desk.ring_back("s2", "T2")
    assert r.messages("teller:t1", "ring_back") == [{"type": "ring_back", "session": "s2"}]
    # a transferred customer waits in the room: not away, and never marked
    loans = Skills.of({"agri_loan": 5}, {"cmn"})
    r.desk.board.add_teller("loans", loans, T0.timestamp())
    await r.desk.accept("t1", "s2")
    await r.desk.transfer("t1", "s2", "agri_loan", "cmn", "wants a loan")
    with pytest.raises(RoutingError, match="transferred"):
        await r.desk.ring_back("s2", "T2")
    await r.desk.teller_state("loans", A)
    assert r.messages("teller:loans", "offer")[-1]["ring_back"] is False
