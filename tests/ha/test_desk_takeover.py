"""The teller desk changes hands without losing a caller (issue 17, item 2): two real
``cuntong api`` replicas on one database, Janus, an mTLS Mosquitto, enrolled terminals on
MQTT, a teller on HTTP + WebSocket with an aiortc call through Janus, HAProxy in front (the
participants' Janus signalling goes through the leader's gate). The leader is killed
(SIGKILL) while one call is live and three customers wait; the standby takes the lease and
adopts the board the leader kept in the database:

- every waiting customer is told the same position again, and is served in the same order;
- the live call goes on: its Janus room is not closed, the teller's page (on the new leader)
  is given the call back, and hang-up and wrap-up work there;
- its recording is archived once, by the new leader; nobody is told ``desk restarted``;
- a waiting customer who chose ring-back (有空了叫我) is still offered as one;
- the board's timers are adopted, not restarted: the expected waits announced again are
  the same (the handle times the old leader learned from short calls carry over); a
  customer the teller declined is still not offered to them (the re-offer cooldown), so
  the first of the others is; a waiting customer whose terminal dropped before the kill
  fails at the deadline its grace period had on the old leader, not a whole grace period
  after the new one read the terminal's retained "offline" again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud.sessions.estimate import HandleTimes
from cloud.sessions.watch import TERMINAL_LOST
from common import procs
from common.wire import call as wire
from janus_client.videoroom import VideoRoom
from tests.ha.rig import haproxy
from tests.helpers import CloudProcess, eventually
from tests.teller.peers import Received
from tests.teller.service_rig import Teller, Terminal
from tests.teller.test_desk_call import TALK, Participant
from tests.teller.test_desk_restart import _desk_up, _env_of, _restart
from tests.teller.test_service import PASSWORD, Service, service  # noqa: F401 - the fixture

WAITING = ("SX-H0002", "SX-H0003", "SX-H0004")
#: Both replicas' terminal grace period: longer than a takeover, so a terminal that dropped
#: before the kill fails at its old deadline, not at the new leader's first check.
TERMINAL_GRACE = 20.0
#: That terminal is missing at least this long before the kill: the margin by which the
#: new leader's ending (at the old deadline) comes before ``kill + TERMINAL_GRACE``.
MISSING_BEFORE_KILL = 5.0


async def _leads(cloud: CloudProcess) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(base_url=cloud.url, timeout=3) as http:
            return (await http.get("/healthz/leader")).status_code == 200
    return False


async def _next_told(terms: list[Terminal], sessions: list[str]) -> list[tuple[int, float]]:
    """The positions and expected waits the terminals are told next (the desk tells every
    waiting customer every few seconds, all in one round), what they were told before
    forgotten."""
    for term in terms:
        _drain(term)

    async def one(term: Terminal, session: str) -> tuple[int, float]:
        while True:
            message = await term.expect("queued", timeout=30)
            if message["session"] == session:
                return message["position"], message["expected_wait"]

    return list(await asyncio.gather(*map(one, terms, sessions)))


async def _short_call(term: Terminal, teller: Teller) -> None:
    """A call accepted and hung up at once, wrap-up done: one handle time learned."""
    await term.request()
    session = (await term.expect("queued"))["session"]
    assert (await teller.event("offer"))["session"] == session
    await teller.post(f"/sessions/{session}/accept")
    await term.expect("connect")
    await teller.post(f"/sessions/{session}/hang-up", {"cause": "done"})
    await term.expect("ended")
    await teller.post("/me/wrap-up-done")


async def _failed_at(term: Terminal, session: str) -> tuple[str, float]:
    """The cause the terminal is told its session failed with, and when (monotonic)."""
    while True:
        message = await term.expect("failed", timeout=120)
        if message["session"] == session:
            return message["cause"], time.monotonic()


async def test_a_killed_leader_s_queue_and_live_call_carry_on_under_the_standby(
    service: Service,  # noqa: F811
    tmp_path: Path,
) -> None:
    old = service.cloud
    teller = await service.teller("qian")
    await teller.open()
    await teller.post("/me/state", {"state": "available"})
    await _desk_up(old.url)
    # The standby's teller grace is the default's 30 s, not the fixture's 2 s: a teller page
    # must have time to reach the new leader (HAProxy notices the takeover in seconds).
    env = {
        **_env_of(old),
        "CUNTONG_CLOUD_TELLER_GRACE_S": "30",
        # Its own service certificates, so its own broker client ids: sharing the leader's
        # ("api"), each replica's ingest links kicked the other's off the broker in turn, and
        # the standby was never healthy (it failed so under load).
        "CUNTONG_CLOUD_SERVICE_INSTANCE": "api-2",
    }
    standby = await asyncio.to_thread(_restart, service, env, tmp_path)
    try:
        assert await _leads(old) and not await _leads(standby)
        async with contextlib.AsyncExitStack() as stack:
            proxy = stack.enter_context(haproxy(tmp_path, [old, standby]))
            talking = await stack.enter_async_context(service.terminal("SX-H0001"))
            waiting = [await stack.enter_async_context(service.terminal(t)) for t in WAITING]
            declined = await stack.enter_async_context(service.terminal("SX-H0005"))
            missing = await stack.enter_async_context(service.terminal("SX-H0006"))
            # the desk learns handle times: enough short calls for their mean to replace
            # the prior in the expected waits it announces
            for _ in range(HandleTimes().min_samples):
                await _short_call(talking, teller)
            # a customer the teller declines: not offered to them again for the cooldown
            await declined.request()
            declined_session = (await declined.expect("queued"))["session"]
            first_offer = await teller.event("offer")
            assert (first_offer["session"], first_offer["ring_back"]) == (declined_session, False)
            await teller.post(f"/sessions/{declined_session}/decline")
            await talking.request()
            session = (await talking.expect("queued"))["session"]
            assert (await teller.event("offer"))["session"] == session
            grant = (await teller.post(f"/sessions/{session}/accept")).json()
            customer = await Participant.join(await talking.expect("connect"), proxy)
            stack.push_async_callback(_leave, customer)
            agent = await Participant.join(grant, proxy)
            stack.push_async_callback(_leave, agent)

            sessions = []
            for term in waiting:  # one after another: their order is their arrival
                await term.request()
                sessions.append((await term.expect("queued"))["session"])
            # the first of them chose 有空了叫我: stored by the old leader before the kill
            await waiting[0].send(wire.RingBack(sessions[0]).to_dict())
            auditor = await service.login("audit", "auditor")
            stack.push_async_callback(auditor.aclose)

            async def ring_back_stored() -> bool:
                r = await auditor.get(f"/api/v1/teller/sessions/{sessions[0]}")
                return r.status_code == 200 and r.json()["ring_back"] is True

            await eventually(ring_back_stored, timeout=30)
            await missing.request()
            missing_session = (await missing.expect("queued"))["session"]
            # its terminal drops (as its last will says): its grace period starts now
            await missing.status(False)
            gone = time.monotonic()
            failed = asyncio.create_task(_failed_at(missing, missing_session))
            stack.callback(failed.cancel)
            heard = await agent.watch(session, "customer")
            await asyncio.sleep(TALK)  # Janus records both sides
            queued = [declined, *waiting]
            all_sessions = [declined_session, *sessions]
            told = await _next_told(queued, all_sessions)
            assert [p for p, _ in told] == [1, 2, 3, 4], told  # the declined one is first
            # the teller is busy: the waits count in the handle times learned, well under
            # the prior's (a call that has run past its mean: a share of one more)
            assert all(w is not None and w < HandleTimes().prior / 10 for _, w in told), told

            await asyncio.sleep(max(0.0, gone + MISSING_BEFORE_KILL - time.monotonic()))
            killed = time.monotonic()
            old.proc.kill()  # SIGKILL: the leader gets no chance to hand anything over
            await asyncio.to_thread(old.proc.wait)
            await teller.close()
            for term in (talking, *queued):  # what the old leader said is history now
                while not term.inbox.empty():
                    term.inbox.get_nowait()
            await eventually(lambda: _leads(standby), timeout=30)
            await _desk_up(standby.url)

            # every waiting customer hears the same position and expected wait again
            again = [(await t.expect("queued", timeout=30)) for t in queued]
            assert [m["session"] for m in again] == all_sessions
            assert [(m["position"], m["expected_wait"]) for m in again] == told

            # the live call is adopted: the teller's page (through HAProxy, which now sends
            # desk paths to the new leader) gets it back; its room is there, asked through
            # the new leader's gate with the customer's old token
            page = await eventually(lambda: _login(proxy), timeout=30)
            me = await eventually(lambda: _me(page), timeout=30)
            # a fresh join as soon as the desk answers through HAProxy, sent through the
            # teller's Janus session whose long poll the dead leader's gate was carrying, is
            # answered: Janus would hand its answer to that dead poll (janus_client flushes it)
            fresh = await agent.watch(session, "customer")
            assert fresh.frames["video"] > 0
            await page.open()
            room = await VideoRoom.attach(customer.session)
            assert await room.exists(session)
            assert (me["session"], me["session_state"], me["state"]) == (
                session, "connected", "busy",
            )  # fmt: skip
            # media never left Janus: what the teller receives keeps coming
            before = heard.frames["video"]
            await eventually(lambda: _more(heard, before), timeout=30)

            # hang-up and wrap-up on the new leader; the next customer offered is the first
            # waiting after the declined one, whose cooldown for this teller runs on
            await page.post(f"/sessions/{session}/hang-up", {"cause": "done"})
            assert (await talking.expect("ended"))["cause"] == "done"
            await page.post("/me/wrap-up-done")
            offer = await page.event("offer", timeout=30)
            assert offer["session"] == sessions[0]
            assert offer["ring_back"] is True  # the ring-back survived the takeover

            async def archived() -> dict[str, Any] | None:
                panel = await page.get(f"/sessions/{session}")
                return panel if panel["recording"] else None

            panel = await eventually(archived, timeout=90)
            states = [h["to"] for h in panel["history"]]
            assert "failed" not in states and states[-1] == "closed", states
            path = Path(panel["recording"]["path"])
            data = await asyncio.to_thread(path.read_bytes)
            assert hashlib.sha256(data).hexdigest() == panel["recording"]["sha256"]
            archive = service.tmp / "archive"
            assert [p.name for p in archive.iterdir() if session in p.name] == [path.name]
            for term in (talking, *queued):
                assert all(m["type"] != "failed" for m in _drain(term)), term.tid
            await page.close()

            # the terminal that dropped before the kill: failed at the deadline it had on
            # the old leader (a grace period restarted by the new leader ends a whole
            # period after the kill, and later: the takeover took seconds)
            cause, failed_at = await failed
            assert cause == TERMINAL_LOST
            assert gone + TERMINAL_GRACE - 1.0 <= failed_at < killed + TERMINAL_GRACE, (
                failed_at - gone, killed - gone,
            )  # fmt: skip
    finally:
        await asyncio.to_thread(procs.stop, standby.proc)


@pytest.fixture
def service_instances() -> tuple[str, ...]:
    return ("api", "api-2")


@pytest.fixture
def service_env() -> dict[str, str]:
    """Both replicas: the terminals' grace period above; a cooldown that outlasts the test
    under any load (the default 60 s could run out before the wrap-up is done)."""
    return {
        "CUNTONG_CLOUD_TERMINAL_GRACE_S": str(TERMINAL_GRACE),
        "CUNTONG_CLOUD_DESK_REOFFER_COOLDOWN_S": "600",
    }


async def _more(got: Received, than: int) -> bool:
    await asyncio.sleep(0.5)
    return got.frames["video"] > than + 10


async def _login(proxy: str) -> Teller | None:
    """The teller's page logs in again, once HAProxy has stopped trying the dead replica."""
    try:
        return await Teller.login(proxy, "qian", PASSWORD)
    except httpx.HTTPError:
        return None


async def _me(page: Teller) -> dict[str, Any] | None:
    """The teller's view, once the desk answers through HAProxy."""
    r = await page.http.get("/api/v1/teller/me")
    return r.json() if r.status_code == 200 else None  # type: ignore[no-any-return]


def _drain(term: Terminal) -> list[dict[str, Any]]:
    out = []
    while not term.inbox.empty():
        out.append(term.inbox.get_nowait())
    return out


async def _leave(side: Participant) -> None:
    with contextlib.suppress(Exception):  # tidying up only
        await side.leave()
