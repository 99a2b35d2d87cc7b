"""Sessions persisted with tortoise (SQLite here): the desk's records come back as written."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.db import close_db, open_db
from cloud.lease import Lease, LeaseLost
from cloud.sessions import desk, recovery, store
from cloud.sessions.errors import InvalidTransition
from cloud.sessions.models import SessionTransition, TellerSession
from cloud.sessions.outbox import Outbox
from cloud.sessions.routing import TellerState
from cloud.sessions.state import Event, State
from cloud.sessions.watch import Watch
from common.lease import CURRENT
from common.wire import call as wire
from tests.helpers import eventually
from tests.steps_rig import agent_verdict
from tests.teller.desk_rig import T0, rig


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[None]:
    config = {
        "connections": {"default": f"sqlite://{tmp_path / 'cloud.sqlite3'}"},
        "apps": {"models": {"models": ["cloud.sessions.models"], "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }
    await Tortoise.init(config=config)
    await Tortoise.generate_schemas()
    try:
        yield
    finally:
        await Tortoise.close_connections()


async def test_desk_history_round_trips_through_the_database(db: None) -> None:
    r = rig("t1")
    r.desk.persist = store.save
    await r.desk.request("s1", "T0042", "pension", "zh-shaanxi", elderly=True)
    r.advance(20)
    await r.desk.tick()  # the offer to t1 times out; t1 is held back, nobody else
    r.advance(60)
    await r.desk.tick()  # re-offered after the hold and the cooldown
    await r.desk.accept("t1", "s1")
    r.advance(240)
    await r.desk.hang_up("s1", "teller ended")
    await store.set_recording("s1", "/archive/s1.mkv", "ab" * 32)

    row = await TellerSession.get(id="s1")
    assert (row.terminal_id, row.business, row.language, row.elderly) == (
        "T0042",
        "pension",
        "zh-shaanxi",
        True,
    )
    assert (row.state, row.teller_id, row.janus_node) == ("wrap-up", "t1", "j1")
    assert row.requested_at == T0 and row.updated_at == T0 + timedelta(seconds=320)
    assert (row.recording_path, row.recording_sha256) == ("/archive/s1.mkv", "ab" * 32)

    loaded = await store.load("s1")
    assert loaded.state is State.WRAP_UP
    assert [t.event for t in loaded.history] == [
        Event.REQUEST,
        Event.ENQUEUE,
        Event.OFFER,
        Event.OFFER_TIMEOUT,
        Event.OFFER,
        Event.ACCEPT,
        Event.HANG_UP,
    ]
    assert loaded.history == r.desk.calls["s1"].session.history


async def test_tampered_history_does_not_load(db: None) -> None:
    r = rig("t1")
    r.desk.persist = store.save
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await r.desk.accept("t1", "s1")
    offer = await SessionTransition.get(session_id="s1", event="offer")
    await offer.delete()
    with pytest.raises(InvalidTransition):
        await store.load("s1")


async def test_terminal_reports_are_stored_for_its_own_sessions_only(db: None) -> None:
    r = rig("t1")
    r.desk.persist = store.save
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await store.set_request("s1", "ab" * 16, {"name": "张三", "id_number": "610102199001011234"})
    verdict = agent_verdict(0.91).masked
    assert await store.set_liveness("s1", "T1", verdict)
    assert not await store.set_liveness("s1", "T-OTHER", {"score": 0})  # not its session
    assert not await store.set_rating("nope", "T1", 5)
    assert await store.set_rating("s1", "T1", 4)
    await store.set_outcome("s1", resolved=True)
    row = await TellerSession.get(id="s1")
    assert (row.request_id, row.customer_name, row.customer_id_number) == (
        "ab" * 16, "张三", "610102199001011234",
    )  # fmt: skip
    assert (row.liveness, row.rating, row.resolved) == (verdict, 4, True)


async def test_sessions_left_open_by_a_dead_desk_are_ended(db: None) -> None:
    r = rig("t1", "t2")
    r.desk.persist = store.save
    for sid in ("wrapped", "talking", "waiting"):
        await r.desk.request(sid, "T1", "pension", "cmn", elderly=False)
    await r.desk.accept("t1", "wrapped")  # the first request went to t1 (longest idle)
    await r.desk.hang_up("wrapped", "done")  # t1 wraps it up
    await r.desk.accept("t2", "talking")
    r.advance(5)
    ended = await store.end_unfinished(r.now[0])
    assert sorted(e.session_id for e in ended) == ["talking", "waiting", "wrapped"]
    by_id = {e.session_id: e for e in ended}
    assert (by_id["talking"].teller_id, by_id["talking"].was) == ("t2", State.CONNECTED)
    # The wrap-up's node was stored with its hang-up; a call's accept is stored before its
    # room opens, so a connected call has none yet (recovery asks the nodes instead).
    assert by_id["wrapped"].janus_node == "j1" and by_id["waiting"].janus_node is None
    assert by_id["wrapped"].was is State.WRAP_UP and by_id["waiting"].teller_id is None
    assert await store.finished_of_terminal("talking", "T1") == (State.FAILED, "desk restarted")
    assert await store.finished_of_terminal("talking", "T2") is None
    states = {s.id: s.state for s in await TellerSession.all()}
    assert states == {"wrapped": "closed", "talking": "failed", "waiting": "failed"}
    assert (await store.load("talking")).history[-1].cause == "desk restarted"
    assert await store.end_unfinished(r.now[0]) == []


def test_who_is_told_what_after_a_restart() -> None:
    def left(was: State, teller: str | None) -> store.LeftOpen:
        return store.LeftOpen("s1", "T1", teller, "j1", was, archived=False)

    failed = {"type": "failed", "session": "s1", "cause": "desk restarted"}
    talking = recovery.notices(left(State.CONNECTED, "t1"))
    assert (talking.terminal, talking.teller_id, talking.teller) == (failed, "t1", failed)
    waiting = recovery.notices(left(State.QUEUED, None))
    assert (waiting.terminal, waiting.teller) == (failed, None)
    wrap_up = recovery.notices(left(State.WRAP_UP, "t1"))
    assert wrap_up.terminal is None  # the customer heard ``ended`` when the call ended
    assert wrap_up.teller == {"type": "ended", "session": "s1", "cause": "desk restarted"}
    # Each one is a message of the one call codec, as the terminal's agent parses them.
    for message in (talking.terminal, wrap_up.teller):
        assert message is not None
        assert wire.parse_desk(wire.desk_from_dict(message).to_bytes()).to_dict() == message


async def test_a_desk_taking_over_keeps_places_positions_and_the_live_call(db: None) -> None:
    """The board as one desk kept it in the database, adopted by the next: the waiting
    customers in the same order with the same positions, an open offer withdrawn (its
    request back at its place), the live call with its grants, which hangs up and
    archives on the new desk; the tellers' states as they were."""
    old = rig("t1", "t2")
    old.desk.persist, old.desk.keep = store.save, store.Keeper()
    await old.desk.teller_state("t2", TellerState.BREAK)
    for n in range(4):  # s0 is offered to t1 and taken; s1, s2, s3 (elderly: ahead) wait
        await old.desk.request(f"s{n}", f"T{n}", "pension", "cmn", elderly=n == 3)
        old.advance(1)
    await old.desk.accept("t1", "s0")
    await old.desk.announce_positions()
    told = {m["session"]: m["position"] for _, m in old.inbox if m["type"] == "queued"}
    customer = old.desk.calls["s0"].customer

    new = rig("t1", "t2")  # the same tellers on the new board, as their profiles say
    new.now[0] = old.now[0]
    new.desk.persist, new.desk.keep = store.save, store.Keeper()
    left, tellers = await store.open_board()
    assert [o.session.id for o in left] == ["s0", "s1", "s2", "s3"]
    assert [recovery.why_not(o) for o in left] == [None] * 4
    adopted = [desk.Adopted(o.session, o.facts, o.teller_id, o.kept, new.media.node) for o in left]
    new.media.rooms.add("s0")  # the room lives on (on Janus, in the real thing)
    await new.desk.adopt(adopted, tellers)

    assert [r.id for r in new.desk.board.waiting()] == ["s3", "s1", "s2"]
    assert new.desk.board.tellers["t1"].state is TellerState.BUSY
    assert new.desk.board.tellers["t2"].state is TellerState.BREAK
    await new.desk.announce_positions()
    again = {m["session"]: m["position"] for _, m in new.inbox if m["type"] == "queued"}
    assert {s: told[s] for s in again} == again and set(again) == {"s1", "s2", "s3"}
    assert new.desk.calls["s0"].customer == customer
    assert new.desk.holder(customer.token) is not None  # the gate knows its token

    await new.desk.hang_up("s0", "teller ended")
    assert new.after == ["s0@j1"] and "s0" in new.media.closed
    await new.desk.request("s4", "T4", "pension", "cmn", elderly=False)
    assert [r.id for r in new.desk.board.waiting()][-1] == "s4"  # after those adopted

    # an offer open when the desk changes hands is withdrawn; the request keeps its place
    await new.desk.finish_wrap_up("t1")  # t1 is offered s3
    assert new.desk.board.offer_to("t1").request_id == "s3"
    left, tellers = await store.open_board()
    third = rig("t1", "t2")
    third.now[0] = new.now[0]
    adopted = [desk.Adopted(o.session, o.facts, o.teller_id, o.kept) for o in left]
    await third.desk.adopt(adopted, tellers)
    assert [r.id for r in third.desk.board.waiting()] == ["s3", "s1", "s2", "s4"]
    assert third.messages("teller:t1", "offer_withdrawn")[0]["cause"] == desk.TAKEN_OVER


async def test_a_desk_taking_over_adopts_the_board_s_timers(db: None) -> None:
    """What runs on the clock survives the change of hands through the database: a
    request's re-offer cooldowns, a teller's no-answer hold and missed count, the handle
    times learned (the expected wait announced stays the same), and a grace period running
    (a terminal missing before the takeover keeps its deadline)."""
    old = rig("t1", "t2")
    old.desk.persist, old.desk.keep = store.save, store.Keeper()
    await old.desk.request("s0", "T0", "pension", "cmn", elderly=False)  # offered to t1
    await old.desk.accept("t1", "s0")
    old.advance(100)
    await old.desk.hang_up("s0", "done")
    await old.desk.finish_wrap_up("t1")  # 100 s learned for pension
    await old.desk.request("s1", "T1", "pension", "cmn", elderly=False)  # offered to t2
    await old.desk.decline("t2", "s1")  # offered to t1 next, who does not answer
    assert old.desk.board.offer_to("t1").request_id == "s1"
    old.advance(20)
    await old.desk.tick()
    await old.desk.teller_state("t2", TellerState.BREAK)
    await old.desk.request("s2", "T2", "pension", "cmn", elderly=False)
    old.advance(1)
    await old.desk.tick()
    assert not old.desk.board.offers  # s1 is cooled down for both, t1 is held back
    t1 = old.desk.board.tellers["t1"]
    hold, missed = t1.hold_until, t1.missed
    assert missed == 1 and hold > old.now[0].timestamp()
    excluded = dict(old.desk.board.requests["s1"].excluded)
    assert set(excluded) == {"t1", "t2"}
    old_watch = Watch(old.desk, Outbox(), lambda: old.now[0], 30.0, 30.0, store.keep_absences)
    old_watch.terminal_offline("T2")
    gone = old.now[0].timestamp()
    await old_watch.check()
    await old.desk.announce_positions()
    told = {m["session"]: m["expected_wait"] for _, m in old.inbox if m["type"] == "queued"}

    new = rig("t1", "t2")
    new.now[0] = old.now[0] + timedelta(seconds=10)  # the takeover took 10 s
    new.desk.persist, new.desk.keep = store.save, store.Keeper()
    left, tellers = await store.open_board()
    adopted = [desk.Adopted(o.session, o.facts, o.teller_id, o.kept) for o in left]
    await new.desk.adopt(adopted, tellers, await store.handle_times())
    assert new.desk.times.mean("pension") == old.desk.times.mean("pension") == 100.0
    teller = new.desk.board.tellers["t1"]
    assert (teller.hold_until, teller.missed) == (hold, missed)
    assert new.desk.board.requests["s1"].excluded == excluded
    new.now[0] = old.now[0]  # the same moment: the same expected waits
    await new.desk.announce_positions()
    again = {m["session"]: m["expected_wait"] for _, m in new.inbox if m["type"] == "queued"}
    assert again == {s: told[s] for s in again} and "s1" in again

    assert again == {"s1": 14.0, "s2": 114.0}  # t1's hold, then the mean learned
    new.now[0] = old.now[0] + timedelta(seconds=10)
    await new.desk.tick()
    assert not new.desk.board.offers  # t1 is still held back
    new.now[0] = datetime.fromtimestamp(hold, UTC)
    await new.desk.tick()  # t1 is offered s2, behind s1: s1 is still cooled down for t1
    assert new.desk.board.offer_to("t1").request_id == "s2"

    watch = Watch(new.desk, Outbox(), lambda: new.now[0], 30.0, 30.0, store.keep_absences)
    watch.adopt(await store.absences())
    watch.terminal_offline("T2")  # the retained "offline" read again by the new leader
    assert watch.terminals.since["T2"] == gone
    new.now[0] = datetime.fromtimestamp(gone + 30, UTC)  # the original deadline
    await watch.check()
    assert new.desk.calls.get("s2") is None  # failed at the first desk's deadline
    assert await store.absences() == {}


async def test_a_desk_whose_lease_moved_on_writes_nothing(tmp_path: Path) -> None:
    """The desk's writes are fenced by its term's lease (``cloud.lease.fenced``), even when
    called from a task outside the term (an HTTP route): once another replica holds the
    lease, a paused old desk's accept is refused and the database keeps the new board's
    view. On the real schema (migrations up to 7, SQLite)."""
    EXECUTOR_CACHE.clear()  # tortoise caches SQL per table name
    await open_db(f"sqlite://{tmp_path / 'fenced.sqlite3'}")
    try:
        old = Lease("desk-fence", "replica-a", 0.3)
        term = await old.acquire()
        assert term is not None
        token = CURRENT.set(term)
        try:  # built in its term, as ``wiring.start`` builds it
            r = rig("t1")
        finally:
            CURRENT.reset(token)
        r.desk.persist, r.desk.keep = store.save, store.Keeper()
        await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)  # offered to t1
        assert (await TellerSession.get(id="s1")).state == "offered"
        new = Lease("desk-fence", "replica-b", 30)
        assert await eventually(new.acquire, timeout=10, every=0.05) is not None
        term.valid_until = time.monotonic() + 100  # a paused process that believes it holds
        with pytest.raises(LeaseLost):
            await r.desk.accept("t1", "s1")
        assert (await TellerSession.get(id="s1")).state == "offered"
        assert await SessionTransition.filter(session_id="s1", event="accept").count() == 0
    finally:
        await close_db()


async def test_a_ring_back_is_stored_and_a_desk_taking_over_keeps_it(db: None) -> None:
    """The customer chose 有空了叫我: the flag reaches the session row (the teller's panel
    reads it there) and a desk adopting the board still offers the call as a ring-back."""
    old = rig("t1")
    old.desk.persist, old.desk.keep = store.save, store.Keeper()
    await old.desk.teller_state("t1", TellerState.BREAK)
    await old.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await old.desk.request("s2", "T2", "pension", "cmn", elderly=False)
    await old.desk.ring_back("s1", "T1")
    rows = {r.id: r.ring_back for r in await TellerSession.all()}
    assert rows == {"s1": True, "s2": False}

    new = rig("t1")
    new.now[0] = old.now[0]
    new.desk.persist, new.desk.keep = store.save, store.Keeper()
    left, tellers = await store.open_board()
    assert [(o.session.id, o.kept.ring_back) for o in left] == [("s1", True), ("s2", False)]
    await new.desk.adopt(
        [desk.Adopted(o.session, o.facts, o.teller_id, o.kept) for o in left], tellers
    )
    await new.desk.teller_state("t1", TellerState.AVAILABLE)
    (offer,) = new.messages("teller:t1", "offer")
    assert (offer["session"], offer["ring_back"]) == ("s1", True)
    await new.desk.decline("t1", "s1")  # the cooldown: s2 is offered next, an ordinary one
    assert new.messages("teller:t1", "offer")[-1]["session"] == "s2"
    assert new.messages("teller:t1", "offer")[-1]["ring_back"] is False
    assert (await TellerSession.get(id="s1")).ring_back is True  # kept as the board changes
