"""The teller web app (/teller) in real headless Chromium, against the real cloud app, desk,
Janus and an aiortc customer that answers on the data channel as a simulated terminal does.

One walk through a teller's call: sign in, 示闲, an offer rings, Enter accepts, both videos
play, the workflow checklist is walked (a voucher photo and an e-signature arrive over the
data channel, chunked), a form is answered, the call ends with an outcome and notes, the
wrap-up countdown runs, English is switched on and remembered, wrap-up is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Page, async_playwright, expect

from cloud.api.app import create_app
from cloud.auth import service
from cloud.auth.deps import authenticate
from cloud.auth.roles import Role
from cloud.evidence.keys import EvidenceKeys
from cloud.media.errors import VideoRoomError
from cloud.media.janus import JanusClient
from cloud.media.pool import JanusPool, NodeAccess
from cloud.media.videoroom import VideoRoom
from cloud.oversight import Oversight
from cloud.sessions import api as teller_api
from cloud.sessions.desk import Desk
from cloud.sessions.grants import Message
from cloud.sessions.outbox import Outbox
from cloud.sessions.routing import Board
from cloud.sessions.skills import Skills
from cloud.workflow import service as workflow
from cloud.workflow.catalogue import load_catalogue
from cuntong import procs
from cuntong.servers.janus import Janus, JanusConfig
from cuntong.settings import CloudSettings
from provisioning import suite as suite_lib
from tests.helpers import eventually
from tests.oversight.conftest import FAST_HASHER, PASSWORD
from tests.screens import CHROMIUM, shot
from tests.teller.peers import TerminalData, publish_with_data, subscribe

FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TELLER = "teller-li"

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium missing")


@dataclass
class Desked:
    url: str
    desk: Desk
    ov: Oversight
    connects: asyncio.Queue[Message]


@pytest.fixture
async def desked(tmp_path: Path) -> AsyncIterator[Desked]:
    """The cloud app on a loopback port with a desk on a real Janus (CORS for that origin)."""
    port = procs.free_port()
    origin = f"http://127.0.0.1:{port}"
    app = create_app(CloudSettings(db_url=f"sqlite://{tmp_path / 'cloud.sqlite3'}", ingest=False))
    ov = Oversight(
        load_catalogue(), EvidenceKeys.generate(), tmp_path / "evidence", suite_lib.Suite.SM,
        hasher=FAST_HASHER,
    )  # fmt: skip
    app.state.oversight = ov
    if not any(getattr(r, "path", "") == "/api/v1/teller/me" for r in app.routes):
        app.include_router(teller_api.router)  # until the desk is wired into create_app
    cfg = JanusConfig(procs.free_port(), procs.free_port(), ice_enforce="127.0.0.1",
                      cors_origin=origin)  # fmt: skip
    janus = Janus(cfg, tmp_path / "janus").start()
    connects: asyncio.Queue[Message] = asyncio.Queue()

    async def to_terminal(terminal: str, message: Message) -> None:
        if message["type"] == "connect":
            connects.put_nowait(message)

    async def teller_auth(token: str) -> str | None:
        who = await authenticate(token, datetime.now(UTC), ov.principals)
        return who.account_id if who is not None and Role.TELLER in who.roles else None

    node = NodeAccess("j1", janus.url, janus.admin_url, cfg.admin_secret, cfg.room_admin_key,
                      str(tmp_path / "rec"))  # fmt: skip
    try:
        async with app.router.lifespan_context(app), JanusPool([node]) as pool:
            await service.create_account(
                TELLER, PASSWORD, ["teller"], datetime.now(UTC), "李柜员", hasher=FAST_HASHER
            )
            outbox = Outbox(terminal_sink=to_terminal)
            board = Board()
            board.add_teller(TELLER, Skills.of({"cash_deposit": 5}, {"cmn"}), 0.0)
            desk = Desk(board, pool, outbox.notify, lambda: datetime.now(UTC))
            app.state.desk, app.state.teller_outbox = desk, outbox
            app.state.teller_auth = teller_auth
            server = uvicorn.Server(
                uvicorn.Config(
                    app, port=port, lifespan="off", log_level="warning", ws="websockets-sansio"
                )  # type: ignore[arg-type]
            )
            tasks = [asyncio.create_task(server.serve()), asyncio.create_task(desk.run())]

            async def started() -> bool:
                return server.started

            await eventually(started)
            try:
                yield Desked(origin, desk, ov, connects)
            finally:
                server.should_exit = True
                tasks[1].cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        janus.stop()


async def customer_joins(grant: Message, stack: contextlib.AsyncExitStack) -> TerminalData:
    """The terminal's side: publish tone, bars and data; subscribe to the teller with data."""
    client = await stack.enter_async_context(JanusClient(grant["janus_url"], grant["token"]))
    session = await stack.enter_async_context(client.session())
    pc, _, channel = await publish_with_data(await VideoRoom.attach(session), grant["room"],
                                             grant["feed"])  # fmt: skip
    stack.push_async_callback(pc.close)
    terminal = TerminalData(channel)
    for _ in range(60):  # the teller publishes once the browser has its camera
        try:
            view, got = await subscribe(await VideoRoom.attach(session), grant["room"],
                                        [grant["peer_feed"]], terminal.on_text)  # fmt: skip
            break
        except VideoRoomError as err:
            if err.code != 428:
                raise
            await asyncio.sleep(0.25)
    stack.push_async_callback(view.close)
    stack.push_async_callback(got.stop)
    return terminal


async def frames(page: Page) -> Any:
    return await page.evaluate(
        "() => { const v = document.getElementById('remote');"
        " return [v.videoWidth, v.getVideoPlaybackQuality().totalVideoFrames]; }"
    )


async def test_a_teller_takes_a_call_from_offer_to_wrap_up(desked: Desked, tmp_path: Path) -> None:
    async with async_playwright() as pw, contextlib.AsyncExitStack() as stack:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        stack.push_async_callback(browser.close)
        page = await browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{desked.url}/teller")
        await expect(page.locator("#login h1")).to_have_text("柜员登录")
        await page.fill("#username", TELLER)
        await page.fill("#password", PASSWORD)
        await page.press("#password", "Enter")
        await expect(page.locator("#who")).to_have_text(TELLER)
        await expect(page.locator("#idle")).to_contain_text("已离线")

        await page.keyboard.press("Alt+1")  # 示闲
        await expect(page.locator("#state-badge")).to_have_text("示闲")
        assert desked.desk.teller_view(TELLER)["state"] == "available"

        await desked.desk.request("s-app", "T0101", "cash_deposit", "cmn", elderly=True)
        await expect(page.locator("#offer")).to_be_visible()
        await expect(page.locator("#offer-facts")).to_contain_text("助农存款")
        await expect(page.locator("#offer-facts")).to_contain_text("老年客户")
        assert await page.evaluate("window.tellerApp.ringing") is True
        left = int(await page.text_content("#offer-left") or 0)
        assert 10 <= left <= 20
        await expect(page.locator("#accept")).to_be_focused()
        await page.keyboard.press("Enter")  # accept

        grant = await asyncio.wait_for(desked.connects.get(), 10)
        terminal = await customer_joins(grant, stack)
        await expect(page.locator("#offer")).to_be_hidden()
        assert await page.evaluate("window.tellerApp.ringing") is False

        # The customer's video plays and keeps moving.
        await page.wait_for_function(
            "document.getElementById('remote').videoWidth > 0", timeout=20_000
        )
        width, first = await frames(page)
        await asyncio.sleep(1.0)
        assert width == 320 and (await frames(page))[1] > first

        # The workflow checklist: steps in order, each unlocked by what the terminal sent.
        steps = page.locator("#steps li")
        await expect(steps).to_have_count(3)
        await expect(steps.nth(0)).to_contain_text("读取银行卡")
        await expect(page.locator("#steps [data-step=voucher_capture]")).not_to_have_class("next")
        await expect(page.locator("button[data-form=confirm]")).to_be_enabled(timeout=10_000)
        await page.click("#steps li.next button.step-do")
        await expect(steps.nth(0)).to_have_class("done")
        await expect(page.locator("#steps li.next button.step-do")).to_be_disabled()  # no photo

        await page.click("button[data-capture=voucher]")
        await expect(page.locator("#documents img[data-kind=voucher]")).to_be_visible()
        await page.click("#steps li.next button.step-do")
        await expect(steps.nth(1)).to_have_class("done")

        await page.click("button[data-form=confirm]")
        await expect(page.locator("#replies")).to_contain_text("您确认办理本项业务吗：是")
        await page.click("#ask-sign")
        await expect(page.locator("#signature-box")).to_be_visible()
        inked = await page.evaluate(
            "() => { const c = document.getElementById('signature');"
            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 100) n++; return n; }"
        )
        assert inked > 300  # the strokes are drawn
        await page.click("#steps li.next button.step-do")
        await expect(steps.nth(2)).to_have_class("done")
        await shot(page, tmp_path / "call.png")

        heard = [m["type"] for m in terminal.heard]
        assert heard == ["capture", "form", "sign"]
        assert [m["type"] for m in terminal.sent] == ["document", "answer", "signature"]

        # End: outcome and notes, then wrap-up with its countdown.
        await page.keyboard.press("Alt+e")
        await expect(page.locator("#end-dialog")).to_be_visible()
        await page.check("input[name=outcome][value=done]")
        await page.fill("#notes", "存款 500 元")
        await page.click("#end-confirm")
        await expect(page.locator("#wrapup")).to_be_visible()
        await expect(page.locator("#wrap-outcome")).to_contain_text("办结")
        wrap_left = int(await page.text_content("#wrap-left") or 0)
        assert 100 <= wrap_left <= 120
        assert desked.desk.teller_view(TELLER)["state"] == "wrap-up"
        loaded = await workflow.get(desked.ov, "s-app")
        assert loaded.workflow.outcome == "completed"
        assert [r.step for r in loaded.workflow.records] == [
            "card_read",
            "voucher_capture",
            "e_signature",
        ]
        await shot(page, tmp_path / "wrap-up.png")

        # English, remembered across a reload; then finish the wrap-up.
        await page.click("#lang")
        await expect(page.locator("#wrap-done")).to_have_text("Wrap-up done")
        await page.reload()
        await expect(page.locator("#lang")).to_have_text("中文")
        await expect(page.locator("#state-badge")).to_have_text("Wrap-up")
        await page.click("#wrap-done")
        await expect(page.locator("#state-badge")).to_have_text("Available")
        assert desked.desk.teller_view(TELLER)["state"] == "available"
        await shot(page, tmp_path / "english.png")
        assert errors == []
