"""A teller's page reloaded mid-call takes the call's media back, in real headless
Chromium against the production-wired cloud app, a real Janus and Mosquitto and the real
terminal agent (``edge.Agent``, a simulated terminal that answers on the data channel).

Before the reload: video both ways, a checklist step done. After it: the page rejoins on
a fresh feed by itself, the customer's video plays again, the checklist is as it was, the
data channel works both ways (a capture request goes out, the voucher photo comes back),
the agent follows the teller's new feed and receives its video, a supervisor listening
in (/teller/watch) sees the new feed too and the teller's page still shows who listens in;
the call then ends normally and the archive holds one checked file with both
directions, both of the teller's segments included.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import Page, expect

from cloud.auth import service
from cloud.auth.masking import mask_name
from cloud.auth.models import AuditEntry
from cloud.media.recording import ffprobe_argv, run
from cloud.sessions.models import TellerSession
from tests.helpers import eventually
from tests.oversight.conftest import FAST_HASHER, PASSWORD
from tests.teller.test_teller_app import (
    CUSTOMER,
    TELLER,
    Desked,
    agent_in_call,
    frames,
    supervisor_overrides,
)

REMOTE_PLAYS = "document.getElementById('remote').videoWidth > 0"
SUPERVISOR = "sup-zhao"


async def advancing(page: Page, video: str, within_s: float = 20.0) -> None:
    """Wait until ``video`` on the page plays frames that keep coming (over 1 s)."""
    shown = f"document.getElementById('{video}').getVideoPlaybackQuality().totalVideoFrames"
    deadline = asyncio.get_running_loop().time() + within_s
    while asyncio.get_running_loop().time() < deadline:
        before = await page.evaluate(shown)
        await asyncio.sleep(1.0)
        if await page.evaluate(shown) > before:
            return
    raise AssertionError(f"{video} does not play")


async def test_a_reloaded_page_rejoins_the_call_and_the_terminal_follows(
    desked: Desked, tmp_path: Path
) -> None:
    await service.create_account(
        SUPERVISOR, PASSWORD, ["supervisor"], datetime.now(UTC), hasher=FAST_HASHER
    )
    async with agent_in_call(desked, tmp_path, "SX-REJOIN-01") as (agent, page, errors):
        sid = desked.desk.teller_view(TELLER)["session"]
        peer = agent.teller.peer
        assert peer is not None and peer.grant.peer_feed == f"teller-{TELLER}"

        async def teller_seen() -> bool:
            return peer.incoming.frames["video"] > 10

        await eventually(teller_seen, 20)
        # A supervisor listens in (/teller/watch) and sees the teller.
        browser = page.context.browser
        assert browser is not None
        watch = await browser.new_page()
        watch.on("pageerror", lambda e: errors.append(str(e)))
        await watch.goto(f"{desked.url}/teller/watch")
        await watch.fill("#username", SUPERVISOR)
        await watch.fill("#password", PASSWORD)
        await watch.press("#password", "Enter")
        await watch.locator(f"#live tr[data-session='{sid}'] button.watch").click()
        await advancing(watch, "v-teller")
        steps = page.locator("#steps li")
        # 读取银行卡: this dev-mode agent cannot sign, so a supervisor overrides the step.
        await expect(steps.nth(0)).to_have_class("next", timeout=10_000)
        await supervisor_overrides(desked, sid, "card_read")
        await expect(steps.nth(0)).to_have_class("done", timeout=10_000)
        await asyncio.sleep(1.5)  # the first teller segment records for a while

        await page.reload()
        # The page takes the call back by itself: state, panel, checklist, video.
        await expect(page.locator("#state-badge")).to_have_text("通话中")
        await page.wait_for_function("window.tellerApp.call !== null")
        assert await page.evaluate("window.tellerApp.call.session") == sid
        await expect(page.locator("#customer-name")).to_have_text(mask_name(CUSTOMER["name"]))
        await expect(steps.nth(0)).to_have_class("done")
        await expect(steps.nth(1)).to_have_class("next")
        await page.wait_for_function(REMOTE_PLAYS, timeout=20_000)
        _, before = await frames(page)
        await asyncio.sleep(1.0)
        assert (await frames(page))[1] > before  # the customer's video moves again

        # The supervisor's page joined again and sees the teller's new feed; the
        # teller's page knows who listens in.
        await advancing(watch, "v-teller")
        await expect(page.locator("#call-guests")).to_contain_text(SUPERVISOR)
        (live,) = desked.desk.live_calls()
        assert live["teller_feed"] == f"teller-{TELLER}~1" and live["guests"] == [SUPERVISOR]

        # The terminal followed the teller's new feed and sees it.
        assert peer.grant.peer_feed == f"teller-{TELLER}~1"
        seen = peer.incoming.frames["video"]

        async def teller_seen_again() -> bool:
            return peer.incoming.frames["video"] > seen + 10

        await eventually(teller_seen_again, 20)
        assert desked.desk.calls[sid].teller is not None
        assert desked.desk.calls[sid].teller.feed == f"teller-{TELLER}~1"
        (entry,) = await AuditEntry.filter(action="teller_rejoin")
        assert (entry.actor, entry.target) == (TELLER, sid)

        # The data channel both ways on the new feed: a capture out, a photo back.
        await expect(page.locator("button[data-capture=voucher]")).to_be_enabled()
        await page.click("button[data-capture=voucher]")
        await expect(page.locator("#documents img[data-kind=voucher]")).to_be_visible(
            timeout=15_000
        )

        # The call ends normally: outcome, hang-up, wrap-up.
        await page.keyboard.press("Alt+e")
        await page.check("input[name=outcome][value=not_done]")
        await page.fill("#notes", "重新载入后继续")
        await page.click("#end-confirm")
        await expect(page.locator("#wrapup")).to_be_visible()
        assert desked.desk.teller_view(TELLER)["state"] == "wrap-up"
    assert errors == []

    async def archived() -> str | None:
        return (await TellerSession.get(id=sid)).recording_path

    path = Path(await eventually(archived, 60))
    probe = json.loads(await run(ffprobe_argv(path)))
    titles = sorted(s["tags"]["title"] for s in probe["streams"])
    assert titles == [
        "customer audio",
        "customer video",
        f"teller-{TELLER} audio",
        f"teller-{TELLER} video",
        f"teller-{TELLER}~1 audio",
        f"teller-{TELLER}~1 video",
    ]
