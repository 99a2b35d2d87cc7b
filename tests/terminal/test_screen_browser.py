"""The customer screen in headless Chromium: the whole journey with big buttons.

The page is served by the real ``Screen`` over a real ``TellerClient``; the desk's messages
are fed in as the agent would, and the room is an in-memory peer whose teller video is a
decoded synthetic frame (the live call test covers the real media). The customer presses
视频柜员, picks a business, sees the queue position, sees the teller's video, answers a form,
signs, hangs up and rates; every press must reach the session topic or the data channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import orjson
from playwright.async_api import async_playwright

from common.wire import call as wire
from common.wire import datachannel as channel
from edge.teller.client import TellerClient
from edge.teller.paperwork import Paperwork
from edge.teller.screen import Screen
from firmware_adapters.camera.synthetic import synthetic_frame
from tests.helpers import eventually
from tests.terminal.fakes import FakeRoom

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-background-networking", "--no-first-run"]


class SelfView:
    def latest(self) -> Any:
        return synthetic_frame(2, dt.datetime.now(dt.UTC), 320, 240)


async def _true(value: object) -> object:
    return value


async def test_customer_journey_on_the_screen(tmp_path: Path) -> None:
    published: list[dict[str, Any]] = []
    rooms: list[FakeRoom] = []

    async def publish(payload: bytes) -> None:
        published.append(orjson.loads(payload))

    def make_room(grant: wire.Grant, on_text: Any, on_event: Any) -> FakeRoom:
        rooms.append(FakeRoom(grant, on_text, on_event))
        return rooms[-1]

    async def no_capture(kind: str) -> None:
        return None

    client = TellerClient(
        publish,
        make_room,
        lambda send: Paperwork(send, no_capture),
        lambda: dt.datetime.now(dt.UTC),
    )
    lock: list[str | None] = ["暂停服务,请到网点办理"]  # the operator's lock_screen message
    screen_server = Screen(client, SelfView(), 0, locked=lambda: lock[0])
    async with screen_server as screen, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"http://127.0.0.1:{screen.port}/")
        message = page.locator("#message")
        await message.filter(has_text="暂停服务,请到网点办理").wait_for(timeout=5000)
        assert not await page.get_by_role("button", name="视频柜员").is_visible()
        lock[0] = None
        await page.get_by_role("button", name="视频柜员").click()
        await page.get_by_role("button", name="养老金认证").click()
        await eventually(lambda: _true(published))
        request = published[0]
        assert (request["type"], request["business"]) == ("request", "pension")

        session = "s-screen"
        await client.on_desk(
            orjson.dumps(
                {
                    "type": "queued",
                    "request_id": request["request_id"],
                    "session": session,
                    "position": 3,
                    "expected_wait": 170,
                    "ring": 0,
                }
            )
        )
        await message.filter(has_text="前面还有 2 位,预计等待 3 分钟").wait_for(timeout=5000)
        font_px = await message.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
        assert font_px >= 48  # large type for older eyes

        await client.on_desk(
            orjson.dumps(
                {
                    "type": "connect",
                    "session": session,
                    "role": "customer",
                    "janus_url": "http://127.0.0.1:1/janus",
                    "token": "t",
                    "room": session,
                    "feed": "customer",
                    "peer_feed": "teller-1",
                    "ice_servers": [],
                }
            )
        )
        await message.filter(has_text="正在和柜员通话").wait_for(timeout=5000)
        # The teller's video arrives as MJPEG and is decoded by the browser.
        await page.wait_for_function(
            "document.getElementById('teller').naturalWidth === 480", timeout=10000
        )
        await page.wait_for_function(
            "document.getElementById('self').naturalWidth === 320", timeout=10000
        )
        await client.show_prompt("请慢慢眨眼")  # a liveness check during the call
        await message.filter(has_text="请慢慢眨眼").wait_for(timeout=5000)
        shot = await page.screenshot(path=str(tmp_path / "call.png"))
        await client.show_prompt(None)
        await message.filter(has_text="正在和柜员通话").wait_for(timeout=5000)
        assert len(shot) > 20_000  # video, not a blank page

        room = rooms[0]
        form = {
            "type": "form",
            "form_id": "f9",
            "title": "请确认办理信息",
            "fields": [
                {"name": "self", "label": "是本人办理吗?", "kind": "confirm"},
                {"name": "to", "label": "到账方式", "kind": "choice", "options": ["存折", "卡"]},
            ],
        }
        room.on_text(channel.encode(form)[0])
        await page.get_by_text("请确认办理信息").wait_for(timeout=5000)
        await page.get_by_role("button", name="是,确认").click()
        await page.get_by_role("button", name="卡").click()
        await page.get_by_role("button", name="提交").click()
        await eventually(lambda: _true(room.sent))
        assert room.sent[0] == channel.answer("f9", {"self": True, "to": "卡"})

        room.on_text(channel.encode({"type": "sign", "form_id": "f9"})[0])
        pad = page.locator("#pad")
        await pad.wait_for(state="visible", timeout=5000)
        box = await pad.bounding_box()
        assert box is not None
        await page.mouse.move(box["x"] + 40, box["y"] + 100)
        await page.mouse.down()
        for i in range(1, 12):
            await page.mouse.move(box["x"] + 40 + i * 30, box["y"] + 100 + (i % 3) * 15)
        await page.mouse.up()
        await page.get_by_role("button", name="确认签名").click()
        await eventually(lambda: _true(len(room.sent) == 2))
        sig = room.sent[1]
        assert (sig["type"], sig["form_id"], sig["width"]) == ("signature", "f9", 600)
        assert len(sig["strokes"]) == 1 and len(sig["strokes"][0]) >= 10

        await page.get_by_role("button", name="结束通话").click()
        await message.filter(has_text="这次服务您满意吗?").wait_for(timeout=5000)
        await page.get_by_role("button", name="非常满意").click()
        await eventually(lambda: _true(len(published) == 3))
        assert [m["type"] for m in published] == ["request", "hang_up", "rating"]
        assert published[2] == {"type": "rating", "session": session, "score": 5}
        await page.get_by_role("button", name="视频柜员").wait_for(timeout=5000)
        await browser.close()
    await asyncio.sleep(0)
