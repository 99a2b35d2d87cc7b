"""A teller in headless Chromium joins with the desk's grant through teller-media.js.

The browser (fake camera and microphone) is the teller; an aiortc peer is the customer.
Both see the other's video, and the archived recording holds the browser's streams too,
so the JavaScript client keeps the grant and recording-name contracts the Python side
relies on. The page and the fixtures are in ``browser.py`` and ``conftest.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import async_playwright

from cloud.sessions.routing import Board, TellerState
from cloud.sessions.skills import Skills
from cuntong.servers.janus import Janus
from janus_client.janus import JanusClient
from janus_client.videoroom import VideoRoom
from tests.teller.browser import CHROMIUM, FLAGS
from tests.teller.peers import publish, subscribe
from tests.teller.recorded_desk import recorded_desk


async def test_browser_teller_joins_with_the_desk_grant(
    cors_janus: Janus, site: str, tmp_path: Path
) -> None:
    janus = cors_janus
    board = Board()
    now = datetime.now(UTC).timestamp()
    board.add_teller("web", Skills.of({"pension": 5}, {"cmn", "zh-shaanxi"}), now)
    board.set_state("web", TellerState.AVAILABLE, now)
    async with recorded_desk(janus, tmp_path, board) as rd:
        desk = rd.desk
        await desk.request("s-web", "T0101", "pension", "zh-shaanxi", elderly=True)
        teller_grant = (await desk.accept("web", "s-web")).message()
        customer = rd.last("terminal:T0101", "connect")

        async with (
            JanusClient(customer["janus_url"], customer["token"]) as client,
            client.session() as session,
            async_playwright() as pw,
        ):
            pub = await VideoRoom.attach(session)
            customer_pc, _ = await publish(pub, "s-web", customer["feed"], customer["pin"])
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = await browser.new_page()
            await page.goto(f"{site}/index.html")
            await page.evaluate("grant => window.start(grant)", teller_grant)
            for _ in range(40):
                if await page.evaluate("window.decoded()") >= 10:
                    break
                await asyncio.sleep(0.25)
            assert await page.evaluate("window.decoded()") >= 10  # the customer, in the browser

            sub = await VideoRoom.attach(session)
            view, got = await subscribe(sub, "s-web", [customer["peer_feed"]], pin=customer["pin"])
            await asyncio.wait_for(got.first_video, 15)
            await asyncio.sleep(1.5)
            assert got.size == (320, 240) and got.frames["audio"] > 20  # the browser's camera

            await got.stop()
            await view.close()
            await customer_pc.close()
            await page.evaluate("window.call.leave()")
            await browser.close()
        await desk.hang_up("s-web", "done")
        await rd.archive()

    streams = rd.archived["s-web"].streams
    assert [(s.title, s.codec) for s in streams] == [
        ("customer audio", "opus"),
        ("customer video", "vp8"),
        ("teller-web audio", "opus"),
        ("teller-web video", "vp8"),
    ]
