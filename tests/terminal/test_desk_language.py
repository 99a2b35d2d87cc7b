"""Language and age reach the real desk from the real agent, and change who is offered the call.

Two tellers: 李 speaks Mandarin and has waited longest, 马 speaks Mandarin and 陕西话. A
Mandarin request goes to 李 (idle longest); a 陕西话 request goes to 马 first. The second
customer starts with their ID card (born 1949) and does not press "over 60": the desk
reads the age from the card and the offer says elderly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.teller.call import Phase
from tests.helpers import enrolled_link, eventually
from tests.integration.agents import agent_settings
from tests.teller.conftest import janus  # noqa: F401 - the service fixture's Janus
from tests.teller.test_service import Service, _link_ready, service  # noqa: F401

pytestmark = pytest.mark.servers

CARD = {"name": "王秀英", "id_number": "110105194912310021"}  # born 1949-12-31


async def _is(value: object) -> object:
    return value


async def test_dialect_and_age_route_the_call(service: Service, tmp_path: Path) -> None:  # noqa: F811
    li = await service.teller("li")
    ma = await service.teller("ma", languages=("cmn", "zh-shaanxi"))
    await li.open()
    await ma.open()
    await li.post("/me/state", {"state": "available"})  # 李 idle longest
    await ma.post("/me/state", {"state": "available"})
    await eventually(lambda: _link_ready(service))
    tid = "SX-LANG-01"
    settings = agent_settings(tmp_path / "agents", 1, tid, face_aware=False)
    agent = Agent(settings, link=await enrolled_link(service.cloud.url, settings.state_dir, tid))
    run = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 15)
        # Mandarin: the teller idle longest
        await agent.teller.ask("pension")
        offer = await li.event("offer")
        assert (offer["language"], offer["elderly"]) == ("cmn", False)
        await agent.teller.end()
        await eventually(lambda: _is(agent.teller.call.phase is Phase.IDLE))

        # 陕西话, with the ID card of a 76-year-old who did not say so
        await agent.teller.ask("pension", customer=CARD, language="zh-shaanxi")
        offer = await ma.event("offer", timeout=20)
        assert (offer["terminal"], offer["language"], offer["elderly"]) == (
            tid,
            "zh-shaanxi",
            True,
        )
        # the terminal's "queued" may land after the teller's offer
        await eventually(lambda: _is(agent.teller.call.session == offer["session"]), timeout=30)
        await agent.teller.end()
    finally:
        agent.stop()
        await asyncio.wait_for(run, 15)
        await li.close()
        await ma.close()
