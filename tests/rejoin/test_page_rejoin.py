"""A teller's page reloaded mid-call takes the call's media back, in real headless
Chromium against the production-wired cloud app, a real Janus and Mosquitto and the real
terminal agent (``edge.Agent``, a simulated terminal that answers on the data channel).

Before the reload: video both ways, a checklist step done. After it: the page rejoins on
a fresh feed by itself, the customer's video plays again, the checklist is as it was, the
data channel works both ways (a capture request goes out, the voucher photo comes back),
the agent follows the teller's new feed and receives its video; the call then ends
normally and the archive holds one checked file with both directions, both of the
teller's segments included.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from playwright.async_api import expect

from cloud.auth.masking import mask_name
from cloud.auth.models import AuditEntry
from cloud.media.recording import ffprobe_argv, run
from cloud.sessions.models import TellerSession
from tests.helpers import eventually
from tests.teller.test_teller_app import CUSTOMER, TELLER, Desked, agent_in_call, frames

REMOTE_PLAYS = "document.getElementById('remote').videoWidth > 0"


async def test_a_reloaded_page_rejoins_the_call_and_the_terminal_follows(
    desked: Desked, tmp_path: Path
) -> None:
    async with agent_in_call(desked, tmp_path, "SX-REJOIN-01") as (agent, page, errors):
        sid = desked.desk.teller_view(TELLER)["session"]
        peer = agent.teller.peer
        assert peer is not None and peer.grant.peer_feed == f"teller-{TELLER}"

        async def teller_seen() -> bool:
            return peer.incoming.frames["video"] > 10

        await eventually(teller_seen, 20)
        steps = page.locator("#steps li")
        await page.click("#steps li.next button.step-do")  # 读取银行卡
        await expect(steps.nth(0)).to_have_class("done")
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
