"""The teller page's core posting, in real headless Chromium: the cloud app as production
wires it (desk, Janus, Mosquitto) with the real core simulator as a child process (its own
SQLite, its fault switch on).

One card-loss call, ended as 办结 from the call: the teller first types an account the core
does not know and the page shows the core's refusal by name, with the dialog still open;
then the core hangs (the simulator's hold switch: nothing applied, nothing answered), the
cloud answers 202 after its timeout and the page shows 处理中 — never 成功 — while a second
submission does nothing; the teller stops waiting, is refused 未办结 (money may have moved)
and confirms again (处理中 again, the same key); released, the core applies the posting
and the page's next ask finds it: 成功 with the core's ``CB…`` reference, kept in the
wrap-up. The core's own database then holds exactly one posting for the session, with
that reference, and the sealed evidence timeline has the refusal, the reference and the
notes once each.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Dialog, Response, async_playwright, expect

from cloud.auth import service
from cloud.workflow import service as workflow
from common import procs
from cuntong.servers.corebank import CoreBankServer
from tests.helpers import eventually
from tests.oversight.conftest import FAST_HASHER, PASSWORD
from tests.screens import CHROMIUM, shot
from tests.teller import test_teller_app as rig
from tests.teller.test_teller_app import FLAGS, TELLER, Desked, available, login
from tests.transactions.posting_helpers import core_http, open_account, walk_card_loss

pytestmark = rig.pytestmark
desked = rig.desked  # the fixture: the cloud app with desk, Janus, Mosquitto


@pytest.fixture
def core_server(tmp_path: Path) -> Iterator[CoreBankServer]:
    server = CoreBankServer(procs.free_port(), tmp_path / "core", faults=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def desk_settings(core_server: CoreBankServer) -> dict[str, Any]:
    """The desked cloud posts to that core: one attempt of 1 s per post, so a hung core
    turns into 处理中 quickly; the periodic reconciler is left out of the way (start-up
    only), so what settles the posting here is the page's own confirm asking the core."""
    return {"core_url": core_server.url, "core_secret_file": core_server.state_dir / "core.secret",
            "core_timeout_s": 1.0, "core_attempts": 1, "core_reconcile_s": 3600}  # fmt: skip


async def faults(core: CoreBankServer, method: str = "GET", **switch: Any) -> dict[str, Any]:
    async with core_http(core) as http:
        r = await http.request(method, "/v1/faults", json=switch if method == "POST" else None)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data


def core_postings(core: CoreBankServer, session: str) -> list[tuple[str, str, str]]:
    """What the core's own SQLite holds for the session: (reference, account, business)."""
    db = sqlite3.connect(core.state_dir / "core.sqlite3")
    try:
        rows = db.execute(
            "SELECT reference, account, business FROM postings WHERE session_id = ?", (session,)
        ).fetchall()
    finally:
        db.close()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


#: Every status the dialog's core line takes, in order (a posting's status or "sending").
WATCH_CORE = """() => {
  window.coreSeen = [];
  const el = document.getElementById('end-core');
  new MutationObserver(() => window.coreSeen.push([el.dataset.status, el.textContent]))
    .observe(el, { attributes: true, attributeFilter: ['data-status'], childList: true });
}"""


async def test_the_page_shows_refusal_then_processing_then_success_and_posts_once(
    desked: Desked, core_server: CoreBankServer, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    account, stranger = f"ACCT-{tag}", f"ACCT-nobody-{tag}"
    await open_account(core_server, account)
    await service.create_account(
        "sup-post", PASSWORD, ["supervisor"], datetime.now(UTC), hasher=FAST_HASHER
    )
    typed = [stranger, account, account]  # what the teller types at each account prompt
    asked: list[str] = []
    confirms: list[int] = []

    async def answer_prompt(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept(typed[len(asked) - 1] if len(asked) <= len(typed) else "")

    def seen(response: Response) -> None:
        if response.url.endswith("/confirm"):
            confirms.append(response.status)

    async with (
        async_playwright() as pw,
        contextlib.AsyncExitStack() as stack,
        httpx.AsyncClient(base_url=desked.url) as teller,
        httpx.AsyncClient(base_url=desked.url) as sup,
    ):
        await login(teller, TELLER)
        await login(sup, "sup-post")
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        stack.push_async_callback(browser.close)
        stack.push_async_callback(faults, core_server, "POST")  # never leave the core hung
        errors: list[str] = []
        page = await available(browser, desked.url, errors)
        page.on("dialog", answer_prompt)
        page.on("response", seen)
        sid = await desked.request(rig.REQUEST_ID, "card_loss")
        # The steps are not what this test is about: walked over the API (device steps
        # overridden by a supervisor, as tests/transactions do), then the call is taken.
        await walk_card_loss(teller, sup, sid)
        await page.click("#accept")
        await expect(page.locator("#steps li")).to_have_count(7)
        await expect(page.locator("#steps li.done")).to_have_count(7, timeout=15_000)
        await page.evaluate(WATCH_CORE)

        # 办结 with an account the core does not know: refused, by name; the dialog stays.
        await page.click("#hangup")
        await expect(page.locator("#end-dialog")).to_be_visible()
        await page.fill("#notes", "挂失")
        await page.click("#end-confirm")
        core_line = page.locator("#end-core")
        await expect(core_line).to_contain_text("失败", timeout=20_000)
        await expect(core_line).to_contain_text("账户不存在 (account_unknown)")
        await expect(core_line).to_have_attribute("data-status", "refused")
        await expect(page.locator("#end-dialog")).to_be_visible()
        assert asked == ["核心账号"] and core_postings(core_server, sid) == []
        await page.screenshot(path=str(tmp_path / "refused.png"))  # dimmed by the dialog

        # The core hangs: the cloud's 1 s attempt times out, it answers 202, the page shows
        # 处理中 and keeps asking; nothing is applied, and a second submission is ignored.
        await faults(core_server, "POST", hold=True)
        await page.click("#end-confirm")
        await expect(core_line).to_contain_text("处理中", timeout=10_000)
        await eventually(lambda: _true(202 in confirms), timeout=30)
        await expect(core_line).to_have_attribute("data-status", "pending")
        await expect(page.locator("#end-confirm")).to_be_disabled()
        await page.evaluate("document.getElementById('end-form').requestSubmit()")
        await page.keyboard.press("Enter")
        held = await eventually(lambda: _held(core_server), timeout=30)
        assert held >= 1
        assert asked == ["核心账号", "核心账号"]  # the second submission asked nothing
        assert core_postings(core_server, sid) == []
        await expect(core_line).not_to_contain_text("成功")
        before = [s for s, _ in await page.evaluate("window.coreSeen")]
        assert "applied" not in before and "pending" in before, before
        await page.screenshot(path=str(tmp_path / "pending.png"))

        # The teller stops waiting (取消): the dialog closes, the posting stays with the
        # cloud; 办结 again asks the core about the same key — 处理中 again, nothing posted.
        await page.click("#end-cancel")
        await expect(page.locator("#end-dialog")).to_be_hidden()
        await expect(page.locator("#toast")).to_contain_text("核心仍在处理")
        await page.click("#hangup")
        # 未办结 while money may have moved is refused, saying why; the dialog stays.
        await page.check("input[name=outcome][value=not_done]")
        await page.click("#end-confirm")
        await expect(page.locator("#end-error")).to_contain_text("不能登记为“未办结”")
        await expect(core_line).to_have_attribute("data-status", "pending")
        assert (await workflow.get(desked.ov, sid)).workflow.outcome is None
        await page.check("input[name=outcome][value=done]")
        await page.fill("#notes", "挂失")
        answered = len(confirms)
        await page.click("#end-confirm")
        await eventually(lambda: _true(len(asked) == 3))  # 办结 asks for the account again
        await expect(page.locator("#end-error")).to_be_hidden()
        await eventually(lambda: _true(202 in confirms[answered:]), timeout=30)
        await expect(core_line).to_have_attribute("data-status", "pending")
        await expect(core_line).to_contain_text("处理中")
        assert core_postings(core_server, sid) == []

        # The core answers: the page's next confirm finds the posting — 成功 with the
        # reference, in the wrap-up; the dialog is gone.
        await faults(core_server, "POST", hold=False)
        wrap = page.locator("#wrap-core")
        await expect(wrap).to_contain_text("成功", timeout=30_000)
        await expect(page.locator("#end-dialog")).to_be_hidden()
        shown = str(await wrap.text_content())
        reference = shown[shown.index("CB") :]
        assert reference.startswith("CB") and len(reference) == 18, shown
        statuses = [s for s, _ in await page.evaluate("window.coreSeen")]
        assert statuses[-1] == "applied" and statuses.count("applied") == 1, statuses
        await shot(page, tmp_path / "posted.png")

        # Exactly one posting in the core's own database, with the reference shown.
        assert core_postings(core_server, sid) == [(reference, account, "card_loss")]
        await eventually(lambda: _none_held(core_server), timeout=30)  # all went through
        assert core_postings(core_server, sid) == [(reference, account, "card_loss")]
        loaded = await workflow.get(desked.ov, sid)
        assert loaded.workflow.outcome == "completed"
        kinds = [e.kind for e in loaded.timeline.events]
        assert kinds.count("core_refused") == 1 and kinds.count("core_posted") == 1
        assert rig.notes_of(loaded) == ["挂失"]  # once, though confirmed three times
        posted = next(e.data for e in loaded.timeline.events if e.kind == "core_posted")
        assert posted["reference"] == reference
        assert 202 in confirms and confirms[-1] == 200
        assert errors == []


async def _true(value: bool) -> bool:
    return value


async def _held(core: CoreBankServer) -> int:
    return int((await faults(core))["held"])


async def _none_held(core: CoreBankServer) -> bool:
    return await _held(core) == 0
