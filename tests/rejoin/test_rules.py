"""Who may take a call's media back, and when: the desk's rule, the route's answers (403,
409, 404), the audit entry, the fresh feed the terminal is told to follow, the grace watch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.auth.models import AuditEntry
from cloud.sessions.errors import RoutingError
from cloud.sessions.grants import free_rejoin, make_grant, teller_feed
from cloud.sessions.outbox import Outbox
from cloud.sessions.state import State
from cloud.sessions.watch import TELLER_GONE, Watch
from tests.teller.api_rig import TellerCloud, teller_cloud
from tests.teller.desk_rig import T0, rig


def test_each_rejoin_gets_a_feed_the_room_has_not_seen() -> None:
    assert teller_feed("li") == "teller-li" and teller_feed("li", 2) == "teller-li~2"
    assert free_rejoin("li", set()) == 0
    assert free_rejoin("li", {"teller-li", "teller-li~1", "teller-wang"}) == 2
    assert free_rejoin("wang", {"teller-li", "teller-li~1"}) == 0
    grant = make_grant("s1", "customer", "http://j/janus", "T1", "li", T0, rejoins=1)
    assert (grant.feed, grant.peer_feed) == ("customer", "teller-li~1")
    with pytest.raises(ValueError, match="rejoins"):
        make_grant("s1", "teller", "http://j/janus", "T1", "li", T0, rejoins=-1)


async def test_the_serving_teller_rejoins_on_a_fresh_feed_and_the_terminal_follows() -> None:
    r = rig("t1", "t2")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=True)
    first = await r.desk.accept("t1", "s1")
    (connect,) = r.messages("terminal:T1", "connect")

    again = await r.desk.rejoin("t1", "s1")
    assert (again.feed, again.peer_feed, again.room) == ("teller-t1~1", "customer", "s1")
    assert first.token not in r.media.tokens and again.token in r.media.tokens
    assert r.media.kicked == [("s1", "teller-t1")]  # a crashed page's publisher goes
    follow = r.messages("terminal:T1", "connect")[-1]
    assert follow["peer_feed"] == "teller-t1~1"
    assert follow["token"] == connect["token"] in r.media.tokens  # the terminal keeps its own
    third = await r.desk.rejoin("t1", "s1")
    assert third.feed == "teller-t1~2" and r.media.kicked[-1] == ("s1", "teller-t1~1")
    assert r.desk.calls["s1"].session.state is State.CONNECTED  # a rejoin is no transition
    facts = r.desk.call_facts("s1")
    assert facts["business"] == "pension" and facts["terminal"] == "T1" and facts["elderly"]
    assert facts["connected_at"] == T0.timestamp()

    with pytest.raises(RoutingError, match="not serving"):
        await r.desk.rejoin("t2", "s1")  # not theirs
    await r.desk.hang_up("s1", "done")
    with pytest.raises(RoutingError, match="wrap-up"):
        await r.desk.rejoin("t1", "s1")  # the call is over
    assert r.media.tokens == set()  # the last grant went with the room


async def test_a_waiting_session_has_nobody_to_rejoin() -> None:
    r = rig()  # no teller: the customer waits
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    with pytest.raises(RoutingError):
        await r.desk.rejoin("t1", "s1")
    with pytest.raises(RoutingError, match="unknown session"):
        await r.desk.rejoin("t1", "nope")


@pytest.fixture
async def tc(tmp_path: Path) -> AsyncIterator[TellerCloud]:
    async with teller_cloud(tmp_path, "t1", "t2") as c:
        yield c


async def test_the_route_answers_only_the_serving_teller(tc: TellerCloud) -> None:
    r = tc.rig
    t1, t2 = await tc.login("t1", "teller"), await tc.login("t2", "teller")
    sup = await tc.login("sup", "supervisor")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    url = "/api/v1/teller/sessions/s1/rejoin"
    assert (await t1.post(url)).status_code == 403  # offered, not yet accepted
    first = (await t1.post("/api/v1/teller/sessions/s1/accept")).json()

    assert (await tc.http.post(url)).status_code == 401
    assert (await sup.post(url)).status_code == 403  # not a teller
    assert (await t2.post(url)).status_code == 403  # another teller's call
    assert (await t1.post("/api/v1/teller/sessions/nope/rejoin")).status_code == 404
    answer = await t1.post(url)
    assert answer.status_code == 200, answer.text
    grant = answer.json()
    assert grant["feed"] == "teller-t1~1" and grant["peer_feed"] == "customer"
    assert grant["token"] in r.media.tokens and first["token"] not in r.media.tokens
    assert grant["call"]["business"] == "pension" and grant["call"]["terminal"] == "T1"
    (entry,) = await AuditEntry.filter(action="teller_rejoin")
    assert (entry.actor, entry.target, entry.detail) == ("t1", "s1", {"feed": "teller-t1~1"})

    assert (await t1.post("/api/v1/teller/sessions/s1/hang-up", json={})).status_code == 204
    assert (await t1.post(url)).status_code == 409  # wrap-up: nothing to rejoin
    for client in (t1, t2, sup):
        await client.aclose()


async def test_a_rejoin_without_an_event_stream_restarts_the_grace_period() -> None:
    r = rig("t1")
    outbox = Outbox()
    watch = Watch(r.desk, outbox, r.desk.clock, teller_grace=30)
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await r.desk.accept("t1", "s1")
    watch.teller_left("t1")
    r.advance(25)
    watch.teller_rejoined("t1")  # alive now, though its stream is not open (yet)
    r.advance(10)
    await watch.check()  # 35 s after leaving, but only 10 s after rejoining
    assert r.desk.calls["s1"].session.state is State.CONNECTED
    r.advance(20)
    await watch.check()  # never connected its stream: hung up 30 s after the rejoin
    assert r.desk.calls["s1"].session.state is State.WRAP_UP
    assert r.records[-1].cause == TELLER_GONE


async def test_a_guest_sees_the_teller_feed_change_and_joins_again_to_watch_it() -> None:
    r = rig("t1")
    await r.desk.request("s1", "T1", "pension", "cmn", elderly=False)
    await r.desk.accept("t1", "s1")
    first = await r.desk.join_guest("s1", "sup")
    assert first.watch == ("teller-t1",)
    await r.desk.rejoin("t1", "s1")
    (live,) = r.desk.live_calls()
    assert live["teller_feed"] == "teller-t1~1" and live["guests"] == ["sup"]
    again = await r.desk.join_guest("s1", "sup")  # what the watch page does on that change
    assert again.watch == ("teller-t1~1",) and first.token not in r.media.tokens
