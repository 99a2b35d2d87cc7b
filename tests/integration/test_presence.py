"""A terminal that dies goes offline through its last will, and comes back."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from common import procs
from cuntong.servers.mosquitto import Broker
from tests.helpers import CloudProcess, eventually
from tests.integration.agents import new_id, spawn_agent


async def test_killed_agent_goes_offline_by_last_will_and_back(
    tmp_path: Path, cloud: CloudProcess, broker: Broker
) -> None:
    port = broker.cfg.port
    tid = new_id("LW")
    agent = spawn_agent(tmp_path, port, tid)
    try:
        async with cloud.client() as http:

            async def status() -> str | None:
                r = await http.get(f"/api/v1/terminals/{tid}")
                return r.json()["status"] if r.status_code == 200 else None

            await eventually(lambda: _is(status, "online"), timeout=20)
            agent.send_signal(signal.SIGKILL)  # no goodbye: only the will can tell
            agent.wait(5)
            # keepalive 5 s: the broker gives up after 1.5 keepalives and publishes the will.
            await eventually(lambda: _is(status, "offline"), timeout=15)

            agent = spawn_agent(tmp_path, port, tid)
            await eventually(lambda: _is(status, "online"), timeout=20)
    finally:
        procs.stop(agent)


async def _is(probe: Callable[[], Awaitable[str | None]], wanted: str) -> bool:
    return (await probe()) == wanted
