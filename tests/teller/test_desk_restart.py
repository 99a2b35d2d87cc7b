"""The desk across a restart of the cloud API: what a terminal sends while it is down is
answered once it is back (its MQTT session persists in the broker)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psutil

from common import procs
from tests.helpers import start_cloud
from tests.teller.test_service import Service, service  # noqa: F401 - the fixture


async def _desk_up(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(150):
            if (await http.get("/healthz")).json().get("desk_link") == "ok":
                return
            await asyncio.sleep(0.1)
    raise AssertionError("desk link not up")


async def test_a_request_sent_while_the_desk_is_down_is_answered_after_it_restarts(
    service: Service,  # noqa: F811
    tmp_path: Path,
) -> None:
    old = service.cloud
    await _desk_up(old.url)  # the desk's session exists in the broker
    env = {
        k: v
        for k, v in psutil.Process(old.proc.pid).environ().items()
        if k.startswith("CUNTONG_CLOUD_") and k != "CUNTONG_CLOUD_API_PORT"
    }
    async with service.terminal("SX-R0001") as terminal:
        await asyncio.to_thread(procs.stop, old.proc)
        request_id = await terminal.request()
        await asyncio.sleep(0.5)  # it is in the broker now, not in any desk
        assert terminal.inbox.empty()
        new = await asyncio.to_thread(
            start_cloud,
            tmp_path,
            env.pop("CUNTONG_CLOUD_DB_URL"),
            service.broker.cfg.port,
            env.pop("CUNTONG_CLOUD_TSDB_URL"),
            False,
            **env,
        )
        try:
            answer = await terminal.expect("queued", timeout=30)
            assert answer["request_id"] == request_id, answer
        finally:
            await asyncio.to_thread(procs.stop, new.proc)
