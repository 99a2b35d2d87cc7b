"""先刷身份证, the ID photo on the teller's page, and the supervisor's override screen, in
real headless Chromium against the cloud app as production wires it (desk, Janus, MQTT),
with the real terminal agent (``edge.Agent``) whose ID-card step reads the serial
simulator and signs with a key enrolled by the CA the cloud trusts.

One walk: the customer reads the card before queueing (the agent's own ``read_id_first``,
which the screen's button calls) and asks for card loss; the desk verifies the signed read,
so the offer is elderly from the card; the teller's panel shows the masked name at answer
and the ID step is taken from that read without asking the terminal again; the card's
photo arrives over the data channel, is shown only while it matches the signed hash, and is
gone from the page (and from the terminal) when the call ends, never in the database; a
supervisor overrides the online check from the watch page with a written reason, which a
teller cannot (no button, 403).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.async_api import async_playwright, expect

from cloud.auth import service
from cloud.workflow import service as workflow
from common.wire import call as wire
from edge.agent import Agent
from edge.steps.runner import StepRunner
from firmware_adapters.idcard.simulator import sample_card
from tests.helpers import eventually
from tests.integration.agents import agent_settings
from tests.oversight.conftest import FAST_HASHER, PASSWORD
from tests.screens import CHROMIUM
from tests.steps_rig import enrol, id_reader
from tests.teller import test_teller_app as rig
from tests.teller.test_teller_app import FLAGS, Desked, available, login

pytestmark = rig.pytestmark
desked = rig.desked  # the fixture: the cloud app with desk, Janus, Mosquitto


async def test_id_read_before_queueing_photo_during_the_call_and_the_override_screen(
    desked: Desked, tmp_path: Path
) -> None:
    tid = "SX-IDF-01"
    now = datetime.now(UTC)
    await service.create_account("sup-qian", PASSWORD, ["supervisor"], now, hasher=FAST_HASHER)
    agent = Agent(agent_settings(tmp_path / "agents", desked.broker_port, tid, face_aware=False))
    run = asyncio.create_task(agent.run())
    try:
        async with (
            async_playwright() as pw,
            id_reader(tmp_path, sample_card(0)) as reader,
            httpx.AsyncClient(base_url=desked.url) as teller_api,
        ):
            own = enrol(desked.authority, tid, now)
            agent.teller.steps = StepRunner(
                lambda: (own.key, own.certificate_pem),
                {**agent.step_handlers(agent.camera), "id_card_read": reader},
                lambda: datetime.now(UTC),
            )
            agent.id_step = reader
            agent.teller.on_call_over.append(reader.photos.clear)
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            errors: list[str] = []
            page = await available(browser, desked.url, errors)
            await asyncio.wait_for(agent.connected.wait(), 15)

            # 先刷身份证 on the terminal, then the business, with the button left unpressed.
            shown = await agent.teller.read_id_first()
            assert shown["outcome"] == "passed" and shown["name"] == "王*娜"
            assert shown["elderly"] is True  # born 1958
            read = agent.teller.id_read
            assert read is not None and read.session == wire.before_queue_session(read.nonce)
            await agent.teller.ask("card_loss", elderly=False)
            await expect(page.locator("#offer-facts")).to_contain_text("挂失")
            await expect(page.locator("#offer-facts")).to_contain_text("老年")  # from the card
            await page.keyboard.press("Enter")
            await page.wait_for_function(
                "document.getElementById('remote').videoWidth > 0", timeout=20_000
            )
            sid = str(await page.evaluate("window.tellerApp.call.session"))
            # At answer: the masked card from the desk-verified read, no ID step asked yet.
            await expect(page.locator("#id-read-first")).to_be_visible(timeout=10_000)
            await expect(page.locator("#customer-name")).to_have_text("王*娜")
            await page.click("#steps li[data-step=dual_recording] button.step-do")
            step = page.locator("#steps li[data-step=id_card_read]")
            await expect(step.locator("button.step-ask")).to_have_text("采用排队前所刷身份证")
            await step.locator("button.step-ask").click()
            await expect(step).to_have_class("done", timeout=10_000)
            loaded = await workflow.get(desked.ov, sid)
            asked = [e.data for e in loaded.timeline.events if e.kind == "step_requested"]
            assert asked == [{"step": "id_card_read", "nonce": read.nonce, "terminal": tid,
                              "before_queue": True}]  # fmt: skip
            results = [e.data for e in loaded.timeline.events if e.kind == "step_result"]
            assert results[0]["signed_session"] == read.session
            assert results[0]["masked"]["name"] == "王*娜"

            # The photo: over the data channel, checked against the signed hash, shown.
            photo = page.locator("#id-photo")
            await expect(photo).to_be_visible(timeout=45_000)  # over the call's data channel
            width = await photo.evaluate("img => img.naturalWidth")
            assert width == 102
            url = str(await photo.get_attribute("src"))
            assert url.startswith("blob:")

            # The supervisor's screen: the online check (no gateway here) is overridden.
            await login(teller_api, "teller-li")
            r = await teller_api.post(
                f"/api/v1/workflow/{sid}/steps/id_online_check/override",
                json={"reason": "柜员自己越权试试"},
            )
            assert r.status_code == 403, r.text
            assert await page.locator("button.override").count() == 0
            sup = await (await browser.new_context()).new_page()
            sup.on("pageerror", lambda e: errors.append(str(e)))
            await sup.goto(f"{desked.url}/teller/watch")
            await sup.fill("#username", "sup-qian")
            await sup.fill("#password", PASSWORD)
            await sup.press("#password", "Enter")
            row = sup.locator(f"#live tr[data-session='{sid}']")
            await row.locator("button.show-steps").click()
            check = sup.locator("#sup-steps li[data-step=id_online_check]")
            await expect(check).to_have_class("next")
            await check.locator("button.override").click()  # no reason: refused
            await expect(sup.locator("#steps-error")).to_contain_text("越权未成功")
            await sup.fill("#override-reason", "联网核查服务中断，主管电话核实身份")
            await check.locator("button.override").click()
            await expect(check).to_have_class("done")
            await expect(check).to_contain_text("联网核查服务中断，主管电话核实身份")
            await expect(sup.locator("#sup-steps li[data-step=face_match]")).to_have_class("next")
            online = page.locator("#steps li[data-step=id_online_check]")
            await expect(online).to_have_class("done", timeout=10_000)  # the teller sees it
            await expect(online).to_contain_text("主管越权通过")

            # The call ends: the photo is gone from the page, its URL revoked; the terminal
            # dropped it; nothing of it is in the database.
            await agent.teller.end()
            await expect(page.locator("#wrapup")).to_be_visible(timeout=15_000)
            await expect(page.locator("#id-photo")).to_have_count(0)
            gone = await page.evaluate("url => fetch(url).then(() => false, () => true)", url)
            assert gone is True

            async def dropped() -> bool:
                return not reader.photos

            await eventually(dropped)
            db = (tmp_path / "cloud.sqlite3").read_bytes()
            jpeg = sample_card(0).photo_wlt  # the simulator's "WLT" is the decoded JPEG
            assert jpeg[200:232] not in db
            assert errors == []
            await browser.close()
    finally:
        agent.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(run, 15)
