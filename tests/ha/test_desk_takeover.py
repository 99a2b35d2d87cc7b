"""The teller desk changes hands without losing a caller (issue 17, item 2): two real
``cuntong api`` replicas on one database, Janus, an mTLS Mosquitto, enrolled terminals on
MQTT, a teller on HTTP + WebSocket with an aiortc call through Janus, HAProxy in front (the
participants' Janus signalling goes through the leader's gate). The leader is killed
(SIGKILL) while one call is live and three customers wait; the standby takes the lease and
adopts the board the leader kept in the database:

- every waiting customer is told the same position again, and is served in the same order;
- the live call goes on: its Janus room is not closed, the teller's page (on the new leader)
  is given the call back, and hang-up and wrap-up work there;
- its recording is archived once, by the new leader; nobody is told ``desk restarted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from common import procs
from janus_client.videoroom import VideoRoom
from tests.ha.rig import haproxy
from tests.helpers import CloudProcess, eventually
from tests.teller.peers import Received
from tests.teller.service_rig import Teller, Terminal
from tests.teller.test_desk_call import TALK, Participant
from tests.teller.test_desk_restart import _desk_up, _env_of, _restart
from tests.teller.test_service import PASSWORD, Service, service  # noqa: F401 - the fixture

WAITING = ("SX-H0002", "SX-H0003", "SX-H0004")


async def _leads(cloud: CloudProcess) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(base_url=cloud.url, timeout=3) as http:
            return (await http.get("/healthz/leader")).status_code == 200
    return False


async def _last_position(term: Terminal, session: str) -> int:
    """The last position the terminal was told, once its inbox has gone quiet."""
    last = None
    while True:
        try:
            message = await asyncio.wait_for(term.inbox.get(), 1.0)
        except TimeoutError:
            if last is not None:
                return last
            continue
        if message["type"] == "queued" and message["session"] == session:
            last = message["position"]


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
            await talking.request()
            session = (await talking.expect("queued"))["session"]
            await teller.event("offer")
            grant = (await teller.post(f"/sessions/{session}/accept")).json()
            customer = await Participant.join(await talking.expect("connect"), proxy)
            stack.push_async_callback(_leave, customer)
            agent = await Participant.join(grant, proxy)
            stack.push_async_callback(_leave, agent)

            sessions = []
            for term in waiting:  # one after another: their order is their arrival
                await term.request()
                sessions.append((await term.expect("queued"))["session"])
            heard = await agent.watch(session, "customer")
            await asyncio.sleep(TALK)  # Janus records both sides
            told = [await _last_position(t, s) for t, s in zip(waiting, sessions, strict=True)]
            assert told == [1, 2, 3], told

            old.proc.kill()  # SIGKILL: the leader gets no chance to hand anything over
            await asyncio.to_thread(old.proc.wait)
            await teller.close()
            for term in (talking, *waiting):  # what the old leader said is history now
                while not term.inbox.empty():
                    term.inbox.get_nowait()
            await eventually(lambda: _leads(standby), timeout=30)
            await _desk_up(standby.url)

            # every waiting customer hears the same position again
            again = [(await t.expect("queued", timeout=30)) for t in waiting]
            assert [m["session"] for m in again] == sessions
            assert [m["position"] for m in again] == told

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

            # hang-up and wrap-up on the new leader; the next customer is the first waiting
            await page.post(f"/sessions/{session}/hang-up", {"cause": "done"})
            assert (await talking.expect("ended"))["cause"] == "done"
            await page.post("/me/wrap-up-done")
            offer = await page.event("offer", timeout=30)
            assert offer["session"] == sessions[0]

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
            for term in (talking, *waiting):
                assert all(m["type"] != "failed" for m in _drain(term)), term.tid
            await page.close()
    finally:
        await asyncio.to_thread(procs.stop, standby.proc)


@pytest.fixture
def service_instances() -> tuple[str, ...]:
    return ("api", "api-2")


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
