"""End to end with the real cloud desk: agent → desk (MQTT, mTLS) → teller accepts (HTTP) →
media both ways through Janus → the customer hangs up and rates on the agent's side.

The cloud API child process runs the desk on real Janus (``tests.teller.test_service``'s
``service`` fixture); the terminal is a real enrolled ``Agent`` with simulated camera and
microphone; the teller is an oversight account on HTTP + WebSocket with an aiortc peer
joined with nothing but its grant.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.teller.call import Phase
from tests.helpers import enrolled_link, eventually
from tests.integration.agents import agent_settings
from tests.steps_rig import agent_verdict
from tests.teller.conftest import janus  # noqa: F401 - the service fixture's Janus
from tests.teller.test_desk_call import Participant
from tests.teller.test_service import Service, _link_ready, service  # noqa: F401

pytestmark = pytest.mark.servers


async def _is(value: object) -> object:
    return value


async def test_agent_calls_a_teller_through_the_real_desk(service: Service, tmp_path: Path) -> None:  # noqa: F811
    teller = await service.teller("zhao")
    await teller.open()
    await teller.post("/me/state", {"state": "available"})
    await eventually(lambda: _link_ready(service))
    tid = "SX-E2E-01"
    settings = agent_settings(tmp_path / "agents", 1, tid, face_aware=False)
    agent = Agent(settings, link=await enrolled_link(service.cloud.url, settings.state_dir, tid))
    run = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 15)
        await agent.teller.ask("pension", elderly=True)
        offer = await teller.event("offer")
        assert (offer["terminal"], offer["business"], offer["elderly"]) == (tid, "pension", True)
        session = offer["session"]
        # "queued" reached the agent (it may land after the teller's offer under load)
        await eventually(lambda: _is(agent.teller.call.session == session), 20)
        grant = (await teller.post(f"/sessions/{session}/accept")).json()
        desk_side = await Participant.join(grant, service.cloud.url)  # a gate path
        await eventually(lambda: _is(agent.teller.call.phase is Phase.IN_CALL), 20)
        heard = await desk_side.watch(session, "customer")  # the teller sees the terminal
        peer = agent.teller.peer
        assert peer is not None
        await eventually(lambda: _is(peer.incoming.frames["video"] >= 10), 20)
        await eventually(lambda: _is(heard.frames["video"] >= 20 and heard.loudest > 3000), 20)
        assert heard.size == (480, 360)

        await agent.teller.liveness(agent_verdict(0.93).masked)
        assert (await teller.event("liveness"))["verdict"]["score"] == 93
        await agent.teller.end()
        assert (await teller.event("ended"))["session"] == session
        await desk_side.leave()
        await agent.teller.rate(4)

        async def rated() -> dict[str, object] | None:
            panel = await teller.get(f"/sessions/{session}")
            return panel if panel["rating"] == 4 else None

        panel = await eventually(rated, timeout=20)
        assert [h["to"] for h in panel["history"]][:4] == [  # type: ignore[index, union-attr]
            "requested", "queued", "offered", "connected",
        ]  # fmt: skip
    finally:
        agent.stop()
        await asyncio.wait_for(run, 15)
        await teller.close()
