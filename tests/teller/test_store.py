"""Sessions persisted with tortoise (SQLite here): the desk's records come back as written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from tortoise import Tortoise

from cloud.sessions import recovery, store
from cloud.sessions.errors import InvalidTransition
from cloud.sessions.models import SessionTransition, TellerSession
from cloud.sessions.state import Event, State
from common.wire import call as wire
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
