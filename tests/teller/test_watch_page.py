"""A supervisor listens in on a call in progress from /teller/watch (real Chromium, Janus,
broker, cloud app): sees and hears both sides; the teller and the terminal are told; the
audit log and the evidence timeline record it; only supervisors may, only on live calls."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.async_api import Page, async_playwright, expect

from cloud.auth import service
from cloud.auth.models import AuditEntry
from cloud.workflow import service as workflow
from tests.oversight.conftest import FAST_HASHER, PASSWORD
from tests.screens import CHROMIUM, shot
from tests.teller.test_teller_app import (
    FLAGS,
    TELLER,
    Desked,
    available,
    customer_joins,
    login,
)
from tests.teller.test_teller_app import desked as desked_fixture

desked = desked_fixture  # the cloud app with its desk, Janus, a broker and a terminal

SUPERVISOR = "sup-wang"


async def playing(page: Page, video: str) -> int:
    """Frames the page has shown of ``video`` once it is playing."""
    await page.wait_for_function(
        f"document.getElementById('{video}').videoWidth > 0", timeout=20_000
    )
    return int(
        await page.evaluate(
            f"document.getElementById('{video}').getVideoPlaybackQuality().totalVideoFrames"
        )
    )


async def test_a_supervisor_listens_in_and_everyone_is_told(desked: Desked, tmp_path: Path) -> None:
    await service.create_account(
        SUPERVISOR, PASSWORD, ["supervisor"], datetime.now(UTC), "王主管", hasher=FAST_HASHER
    )
    async with (
        async_playwright() as pw,
        contextlib.AsyncExitStack() as stack,
        httpx.AsyncClient(base_url=desked.url) as sup,
        httpx.AsyncClient(base_url=desked.url) as teller,
    ):
        await login(sup, SUPERVISOR)
        await login(teller, TELLER)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        stack.push_async_callback(browser.close)
        errors: list[str] = []
        page = await available(browser, desked.url, errors)
        sid = await desked.request("4" * 32)
        assert (await sup.post(f"/api/v1/teller/sessions/{sid}/watch")).status_code == 409
        await page.click("#accept")
        customer = await customer_joins(await desked.next("connect", session=sid), stack)
        assert customer.seen is not None
        await page.wait_for_function("document.getElementById('remote').videoWidth > 0")

        # The supervisor signs in on the watch page and picks the call from the list.
        watch = await browser.new_page(viewport={"width": 1280, "height": 900})
        watch.on("pageerror", lambda e: errors.append(str(e)))
        await watch.goto(f"{desked.url}/teller/watch")
        await watch.fill("#username", SUPERVISOR)
        await watch.fill("#password", PASSWORD)
        await watch.press("#password", "Enter")
        row = watch.locator(f"#live tr[data-session='{sid}']")
        await expect(row).to_contain_text(TELLER)
        await expect(row).to_contain_text("助农存款 · 老年客户")  # the catalogue's name
        await row.locator("button.watch").click()

        # Both sides play on the supervisor's page, and keep moving.
        first = [await playing(watch, v) for v in ("v-customer", "v-teller")]
        await watch.wait_for_timeout(1500)
        later = [await playing(watch, v) for v in ("v-customer", "v-teller")]
        assert all(b > a for a, b in zip(first, later, strict=True)), (first, later)
        await shot(watch, tmp_path / "watch.png")

        # The teller sees who listens; the terminal is told (its screen says so).
        await expect(page.locator("#call-guests")).to_contain_text(SUPERVISOR)
        told = await desked.next("guest", session=sid)
        assert (told["guest"], told["present"]) == (SUPERVISOR, True)
        live = (await sup.get("/api/v1/teller/live")).json()
        assert [(c["session"], c["teller"], c["guests"]) for c in live] == [
            (sid, TELLER, [SUPERVISOR])
        ]
        # Tellers may not list or join calls; nobody joins a call that is not live.
        assert (await teller.get("/api/v1/teller/live")).status_code == 403
        assert (await teller.post(f"/api/v1/teller/sessions/{sid}/watch")).status_code == 403
        assert (await sup.post("/api/v1/teller/sessions/nope/watch")).status_code == 409

        await watch.click("#leave")
        await expect(watch.locator("#watching")).to_be_hidden()
        left = await desked.next("guest", session=sid)
        assert (left["guest"], left["present"]) == (SUPERVISOR, False)
        await expect(page.locator("#call-guests")).to_be_hidden()

        actions = await AuditEntry.filter(target=sid, actor=SUPERVISOR).values_list(
            "action", flat=True
        )
        assert list(actions) == ["session_guest_joined", "session_guest_left"]
        timeline = (await workflow.get(desked.ov, sid)).timeline.events
        kinds = [(e.kind, e.actor) for e in timeline if e.kind.startswith("guest_")]
        assert kinds == [("guest_joined", SUPERVISOR), ("guest_left", SUPERVISOR)]
        assert errors == []
