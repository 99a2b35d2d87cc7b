"""The big screen in a real (headless Chromium) browser: log in, see the live numbers."""

from __future__ import annotations

import asyncio

import pytest
import uvicorn
from playwright.async_api import async_playwright

from cloud.api import deps
from cloud.models import Terminal
from cloud.ops.feeds import LiveState
from common import procs
from tests.helpers import eventually
from tests.oversight.conftest import FAST_HASHER, PASSWORD, Cloud

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_big_screen_logs_in_and_shows_the_overview(cloud: Cloud) -> None:
    from cloud.auth import service

    async def live() -> LiveState:
        return LiveState(queued=7, longest_wait_s=42.4, tellers={"available": 5, "busy": 9})

    cloud.app.dependency_overrides[deps.live] = lambda: live
    await Terminal.create(id="T-1", online=True)
    await service.create_account(
        "wall", PASSWORD, ["fleet_operator"], cloud.clock(), hasher=FAST_HASHER
    )
    port = procs.free_port()
    server = uvicorn.Server(
        uvicorn.Config(cloud.app, port=port, lifespan="off", log_level="warning")
    )  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return server.started

        await eventually(started)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/api/v1/ops/screen")
            await page.fill("#user", "wall")
            await page.fill("#pass", PASSWORD)
            await page.click("#login button")
            await page.wait_for_function("document.getElementById('queue').textContent === '7'")
            assert await page.text_content("#wait") == "42"
            assert await page.text_content("#online") == "1"
            assert "busy9" in (await page.text_content("#tellers") or "")
            await browser.close()
    finally:
        server.should_exit = True
        await task
