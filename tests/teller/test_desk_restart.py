"""The desk across a restart of the cloud API: what a terminal sends while it is down is
answered once it is back (its MQTT session persists in the broker). A call open when the API
died (kill -9) is adopted by the new desk when its room is still there
(``tests/ha/test_desk_takeover.py``); one that cannot be adopted (here its room was destroyed
meanwhile) is ended by the new desk as before: its recording archived, the customer and the
teller told ``desk restarted``, the customer's late hang-up accepted."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from pathlib import Path
from typing import Any

import httpx
import psutil

from cloud.media.pool import room_secret
from common import procs
from common.wire.call import absolute_janus_url
from janus_client.janus import JanusClient
from janus_client.videoroom import VideoRoom
from tests.helpers import CloudProcess, eventually, start_cloud
from tests.teller.service_rig import Teller
from tests.teller.test_desk_call import TALK, Participant
from tests.teller.test_service import PASSWORD, Service, service  # noqa: F401 - the fixture


async def _desk_up(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(150):
            if (await http.get("/healthz")).json().get("desk_link") == "ok":
                return
            await asyncio.sleep(0.1)
    raise AssertionError("desk link not up")


def _env_of(cloud: CloudProcess) -> dict[str, str]:
    """The running API's settings, to start its successor with the same ones."""
    return {
        k: v
        for k, v in psutil.Process(cloud.proc.pid).environ().items()
        if k.startswith("CUNTONG_CLOUD_") and k != "CUNTONG_CLOUD_API_PORT"
    }


def _restart(svc: Service, env: dict[str, str], tmp_path: Path) -> CloudProcess:
    env = dict(env)
    return start_cloud(
        tmp_path,
        env.pop("CUNTONG_CLOUD_DB_URL"),
        svc.broker.cfg.port,
        env.pop("CUNTONG_CLOUD_TSDB_URL"),
        False,
        **env,
    )


async def test_a_request_sent_while_the_desk_is_down_is_answered_after_it_restarts(
    service: Service,  # noqa: F811
    tmp_path: Path,
) -> None:
    old = service.cloud
    await _desk_up(old.url)  # the desk's session exists in the broker
    env = _env_of(old)
    async with service.terminal("SX-R0001") as terminal:
        await asyncio.to_thread(procs.stop, old.proc)
        request_id = await terminal.request()
        await asyncio.sleep(0.5)  # it is in the broker now, not in any desk
        assert terminal.inbox.empty()
        new = await asyncio.to_thread(_restart, service, env, tmp_path)
        try:
            answer = await terminal.expect("queued", timeout=30)
            assert answer["request_id"] == request_id, answer
        finally:
            await asyncio.to_thread(procs.stop, new.proc)


async def test_a_call_lost_across_a_desk_kill_is_archived_and_its_parties_are_told(
    service: Service,  # noqa: F811
    tmp_path: Path,
) -> None:
    old = service.cloud
    teller = await service.teller("zhao")
    await teller.open()
    await teller.post("/me/state", {"state": "available"})
    await _desk_up(old.url)
    env = _env_of(old)
    async with service.terminal("SX-R0002") as term, contextlib.AsyncExitStack() as media:
        await term.request()
        session = (await term.expect("queued"))["session"]
        await teller.event("offer")
        grant = (await teller.post(f"/sessions/{session}/accept")).json()
        connect = await term.expect("connect")
        customer = await Participant.join(connect, service.cloud.url)
        media.push_async_callback(_leave, customer)
        media.push_async_callback(_leave, await Participant.join(grant, service.cloud.url))
        await asyncio.sleep(TALK)  # Janus records both sides
        old.proc.kill()  # kill -9: the old desk gets no chance to tidy up
        await asyncio.to_thread(old.proc.wait)
        await teller.close()
        # Its room is gone by the time a desk is back (a Janus restart would do that): the
        # call cannot be adopted.
        # (straight on Janus: the gate died with the old cloud)
        direct = JanusClient(env["CUNTONG_CLOUD_JANUS_URL"], connect["token"])
        async with direct as janus, janus.session() as js:
            control = await VideoRoom.attach(js)
            secret = room_secret(env["CUNTONG_CLOUD_JANUS_ROOM_KEY"], session)
            await control.destroy_room(session, secret)

        new = await asyncio.to_thread(_restart, service, env, tmp_path)
        try:
            told = {"type": "failed", "session": session, "cause": "desk restarted"}
            assert await term.expect("failed", timeout=30) == told
            # The teller's next page load opens the event stream: the news is there.
            again = await Teller.login(new.url, "zhao", PASSWORD)
            await again.open()
            assert await again.event("failed") == told
            # Asked through the new cloud's gate (the old one is gone with its port).
            url = absolute_janus_url(connect["janus_url"], new.url)
            async with JanusClient(url, connect["token"]) as probe, probe.session() as js:
                room = await VideoRoom.attach(js)
                assert not await room.exists(session)  # the new desk closed it

            async def archived() -> dict[str, Any] | None:
                panel = await again.get(f"/sessions/{session}")
                return panel if panel["recording"] else None

            panel = await eventually(archived, timeout=60)
            assert [h["to"] for h in panel["history"]][-1] == "failed"
            path = Path(panel["recording"]["path"])
            data = await asyncio.to_thread(path.read_bytes)
            assert path.parent == service.tmp / "archive" and len(data) > 10_000
            assert hashlib.sha256(data).hexdigest() == panel["recording"]["sha256"]

            # The customer's hang-up, sent late (they missed the news): accepted and
            # answered with how the session ended; not refused.
            await term.send({"type": "hang_up", "session": session})
            assert await term.expect("failed") == told
            async with httpx.AsyncClient(base_url=new.url) as http:
                stats = (await http.get("/healthz")).json()["desk_stats"]
            assert (stats["late"], stats["refused"]) == (1, 0), stats
            await again.close()
        finally:
            await asyncio.to_thread(procs.stop, new.proc)


async def _leave(side: Participant) -> None:
    with contextlib.suppress(Exception):  # its room is gone: leaving is tidying up only
        await side.leave()
