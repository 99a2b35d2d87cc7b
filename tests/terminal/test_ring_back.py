"""Ring-back: a customer facing a long queue asks to be called when a teller is free.

Pure first (the call machine and the screen's view), then end to end with the real agent and
the real desk: no teller on duty, so the desk cannot say how long; the customer chooses
ring-back; a teller comes on duty and accepts; the terminal's screen rings (the chime) and
says 柜员来了,请回到屏幕前 while the call starts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import wave
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from common.wire import call as wire
from edge.agent import Agent
from edge.teller import call, prompts, view
from edge.teller.call import Call
from edge.teller.client import TellerClient
from edge.teller.paperwork import Paperwork
from edge.teller.voice import chime
from tests.helpers import enrolled_link, eventually
from tests.integration.agents import agent_settings
from tests.teller.conftest import janus  # noqa: F401 - the service fixture's Janus
from tests.teller.test_service import Service, _link_ready, service  # noqa: F401

NOW = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)
PAPERWORK = SimpleNamespace(screen=None, form=None, sign=None)
RID = "5f1c0a9e7b3d4c2a8e6f0b1d3c5a7e9f"


def _queued(wait: float | None) -> Call:
    asked = call.step(Call(), call.Ask("pension", RID), NOW).call
    return call.step(asked, call.DeskSays(wire.Queued("s1", 3, wait, None, RID)), NOW).call


def test_ring_back_is_offered_only_on_a_long_or_unknown_wait() -> None:
    assert not call.ring_back_offered(_queued(120.0))
    assert call.step(_queued(120.0), call.RingBack(), NOW).ignored is not None
    for wait in (call.RING_BACK_AFTER_S, None):
        waiting = _queued(wait)
        assert view.view(waiting, PAPERWORK, NOW)["ring_back_offer"] is True
        chosen = call.step(waiting, call.RingBack(), NOW)
        # the request stays queued; the desk is told the customer may step away
        assert chosen.call.ring_back and chosen.actions == (call.Send(wire.RingBack("s1")),)
        state = view.view(chosen.call, PAPERWORK, NOW)
        assert state["message"] == prompts.ROWS["ring_back.waiting"]
        assert state["ring_back_offer"] is False


def test_the_call_back_rings_and_says_so_for_the_first_seconds() -> None:
    chosen = call.step(_queued(None), call.RingBack(), NOW).call
    grant = wire.Grant("s1", "customer", "http://j", "t", "r", "f", "p")
    connecting = call.step(chosen, call.DeskSays(wire.Connect(grant)), NOW).call
    state = view.view(connecting, PAPERWORK, NOW)
    assert (state["message"], state["chime"]) == (prompts.ROWS["ring_back.called"], True)
    talking = call.step(connecting, call.MediaUp(), NOW).call
    assert view.view(talking, PAPERWORK, NOW + dt.timedelta(seconds=5))["chime"] is True
    later = view.view(talking, PAPERWORK, NOW + dt.timedelta(seconds=view.CALLED_BACK_S))
    assert (later["message"], later["chime"]) == (prompts.ROWS["in_call"], False)


async def test_a_ring_back_the_desk_link_drops_still_rings_the_screen() -> None:
    """The desk link is down when the customer presses 有空了叫我: the screen does not fail,
    the request stays queued, and the screen still says it will ring (only the teller's
    offer will lack the warning)."""
    sent: list[bytes] = []

    async def link_down(payload: bytes) -> None:
        sent.append(payload)
        raise ConnectionError("the MQTT link is down")

    client = TellerClient(
        link_down,
        lambda *a: None,  # type: ignore[arg-type,return-value]
        lambda send: Paperwork(send, _no_capture),
        lambda: NOW,
    )
    client.call = _queued(None)
    await client.ring_back()
    assert sent == [wire.RingBack("s1").to_bytes()]
    assert client.call.ring_back and client.call.phase is call.Phase.WAITING
    state = view.view(client.call, client.paperwork, NOW)
    assert state["message"] == prompts.ROWS["ring_back.waiting"]
    with pytest.raises(ValueError, match="ring-back is offered only"):
        await client.ring_back()  # once: it is no longer on offer


async def _no_capture(kind: str) -> None:
    return None


def test_the_chime_is_a_wav_with_sound() -> None:
    with wave.open(BytesIO(chime())) as w:
        assert 0.8 < w.getnframes() / w.getframerate() < 1.0
        assert max(w.readframes(w.getnframes())) > 0


async def _is(value: object) -> object:
    return value


@pytest.mark.servers
async def test_ring_back_end_to_end(service: Service, tmp_path: Path) -> None:  # noqa: F811
    """The real agent's customer chooses ring-back; another terminal's forged mark of that
    session is refused and changes nothing; the desk offers the call to the teller as a
    ring-back (the panel says so too), and an ordinary request queued behind it is offered
    without the flag."""
    teller = await service.teller("zhou")
    await teller.open()  # logged in, not yet on duty: nobody can serve the request
    auditor = await service.login("audit", "auditor")
    await eventually(lambda: _link_ready(service))
    tid = "SX-RING-01"
    settings = agent_settings(tmp_path / "agents", 1, tid, face_aware=False)
    agent = Agent(settings, link=await enrolled_link(service.cloud.url, settings.state_dir, tid))
    run = asyncio.create_task(agent.run())
    client = agent.teller

    def screen() -> dict[str, object]:
        return view.view(client.call, client.paperwork, client.clock())

    async def panel(session: str) -> dict[str, Any]:
        r = await auditor.get(f"/api/v1/teller/sessions/{session}")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def refused() -> int:
        return (await service.health())["desk_stats"]["refused"]  # type: ignore[index,no-any-return]

    try:
        await asyncio.wait_for(agent.connected.wait(), 15)
        await client.ask("pension")
        await eventually(lambda: _is(screen()["ring_back_offer"]), 20)
        session = client.call.session
        assert session is not None

        async with service.terminal("SX-RING-02") as other:  # an ordinary request behind it
            await other.request("pension")
            plain = (await other.expect("queued", 20))["session"]
            # a terminal may mark only its own session: this one is refused, nothing changes
            before = await refused()
            await other.send(wire.RingBack(session).to_dict())

            async def counted() -> bool:
                return await refused() == before + 1

            await eventually(counted, 20)
            assert (await panel(session))["ring_back"] is False

            await client.ring_back()  # the customer presses 有空了叫我
            assert screen()["message"] == prompts.ROWS["ring_back.waiting"]

            async def marked() -> bool:
                return bool((await panel(session))["ring_back"])

            await eventually(marked, 20)  # the desk recorded it (the panel reads the row)

            await teller.post("/me/state", {"state": "available"})  # a teller frees up
            offer = await teller.event("offer", timeout=20)
            assert (offer["session"], offer["terminal"], offer["ring_back"]) == (
                session, tid, True,
            )  # fmt: skip
            await teller.post(f"/sessions/{offer['session']}/accept")

            async def rang() -> dict[str, object] | None:
                state = screen()
                return state if state["chime"] else None

            state = await eventually(rang, 20)
            assert state["message"] == prompts.ROWS["ring_back.called"]
            assert client.call.session == offer["session"]
            assert (await teller.get(f"/sessions/{session}"))["ring_back"] is True
            await client.end()

            await teller.event("ended", timeout=20)
            await teller.post("/me/state", {"state": "available"})  # wrap-up done
            ordinary = await teller.event("offer", timeout=20)
            assert (ordinary["session"], ordinary["ring_back"]) == (plain, False)
            assert (await panel(plain))["ring_back"] is False
            await other.send(wire.Cancel(plain).to_dict())
    finally:
        agent.stop()
        await asyncio.wait_for(run, 15)
        await teller.close()
        await auditor.aclose()
