"""A business that moves money asks the amount before the card, in real headless Chromium
against the cloud app as production wires it (desk, Janus, Mosquitto) with the real core
simulator attached: the teller page's 读取银行卡 first asks 金额（元）; nothing is sent to
the terminal while no amount is given; the desk's step request then carries the amount in
fen, which the card's cryptogram must cover (``tests/transactions/test_card_pin_steps.py``
proves the HSM and the confirm side)."""

from __future__ import annotations

import contextlib
import uuid

from playwright.async_api import Dialog, async_playwright, expect

from common.wire import call as wire
from tests.screens import CHROMIUM
from tests.teller import test_teller_app as rig
from tests.teller.test_core_posting_page import core_server, desk_settings  # noqa: F401
from tests.teller.test_teller_app import FLAGS, Desked, available

pytestmark = rig.pytestmark
desked = rig.desked  # the fixture: the cloud app with desk, Janus, Mosquitto


async def test_the_page_asks_the_amount_before_the_card(desked: Desked) -> None:
    typed = ["", "350.50"]  # first left empty, then 350.50 yuan
    asked: list[str] = []

    async def answer_prompt(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept(typed[len(asked) - 1] if len(asked) <= len(typed) else "")

    async with async_playwright() as pw, contextlib.AsyncExitStack() as stack:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        stack.push_async_callback(browser.close)
        errors: list[str] = []
        page = await available(browser, desked.url, errors)
        page.on("dialog", answer_prompt)
        await desked.request(uuid.uuid4().hex, "cash_deposit")  # card, voucher, signature
        await page.click("#accept")
        card = page.locator("#steps li[data-step=card_read]")
        await expect(card).to_have_class("next", timeout=15_000)

        # No amount typed: nothing goes to the terminal, the page says what is missing.
        await card.locator("button.step-ask").click()
        await expect(card).to_contain_text("金额（元）")
        assert asked == ["金额（元）/ amount (yuan)"]

        # 350.50 yuan: the desk asks the card over 35050 fen (and this is the first
        # card_read request the terminal gets: the empty prompt sent none).
        await card.locator("button.step-ask").click()
        asked_card = wire.desk_from_dict(await desked.next("step", step="card_read"))
        assert isinstance(asked_card, wire.StepRequest)
        assert asked_card.params["amount_fen"] == 35_050
        assert len(asked) == 2
        await expect(card).to_contain_text("已请终端执行")
        assert errors == []
