"""Grace periods: a vanished terminal fails its sessions, a vanished teller is hung up,
each only once the grace is over and only if they did not come back."""

from __future__ import annotations

from cloud.sessions.absence import Absences
from cloud.sessions.outbox import Outbox
from cloud.sessions.state import Event, State
from cloud.sessions.watch import Watch
from tests.teller.desk_rig import rig


def test_absences_hand_over_each_overdue_party_once() -> None:
    a = Absences(grace=30)
    a.gone("T1", 100)
    a.gone("T1", 120)  # the first mark stands
    a.gone("T2", 110)
    assert a.due(129) == []
    assert a.due(130) == ["T1"]
    assert a.back("T2") and not a.back("T2")
    assert a.due(1000) == []


async def test_terminal_offline_past_the_grace_fails_its_sessions() -> None:
    r = rig("t1", "t2")
    outbox = Outbox()
    watch = Watch(r.desk, outbox, r.desk.clock, terminal_grace=30, teller_grace=30)
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await r.desk.accept("t1", "s1")
    await r.desk.request("s2", "T2", "pension", "cmn", elderly=False)
    watch.terminal_offline("T1")
    watch.terminal_offline("T2")
    watch.terminal_offline("T3")  # no session: nothing to watch
    r.advance(20)
    watch.terminal_online("T2")  # came back in time
    await watch.check()
    assert r.desk.calls["s1"].session.state is State.CONNECTED
    r.advance(10)
    await watch.check()
    assert "s1" not in r.desk.calls and "s2" in r.desk.calls
    failed = r.messages("terminal:T1", "failed")
    assert failed == [{"type": "failed", "session": "s1", "cause": "terminal link lost"}]
    assert r.events("s1")[-1] is Event.FAIL
    assert r.desk.board.tellers["t1"].state.value == "available"


async def test_teller_disconnected_past_the_grace_is_hung_up() -> None:
    r = rig("t1")
    outbox = Outbox()
    watch = Watch(r.desk, outbox, r.desk.clock, terminal_grace=30, teller_grace=10)
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await r.desk.accept("t1", "s1")
    with outbox.subscribe("t1"), outbox.subscribe("t1"):
        pass
    watch.teller_left("t1")
    r.advance(5)
    with outbox.subscribe("t1"):  # a reload: back within the grace
        watch.teller_joined("t1")
        r.advance(10)
        await watch.check()
        watch.teller_left("t1")  # still connected: not missing
    assert r.desk.calls["s1"].session.state is State.CONNECTED
    watch.teller_left("t1")
    r.advance(10)
    await watch.check()
    assert r.desk.calls["s1"].session.state is State.WRAP_UP
    assert r.records[-1].cause == "teller disconnected"
    assert r.after == ["s1@j1"]  # released like any hang-up: the recording is archived


async def test_an_available_teller_who_left_goes_offline() -> None:
    r = rig("t1", "t2")
    outbox = Outbox()
    watch = Watch(r.desk, outbox, r.desk.clock, terminal_grace=30, teller_grace=10)
    watch.teller_left("t1")
    r.advance(10)
    await watch.check()
    assert r.desk.board.tellers["t1"].state.value == "offline"
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    assert r.desk.board.offers["s1"].teller_id == "t2"
