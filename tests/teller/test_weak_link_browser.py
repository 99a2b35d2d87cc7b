"""The production teller (headless Chromium, ``teller-media.js``) over the village link.

The terminal's own call path (``TellerClient``/``RoomPeer``/``CallMedia``) reaches Janus only
through coturn, relay-only, with the user-space impairment relay (300 kbit/s, 200 ms RTT, 3%
loss) in front of coturn; the teller page runs in Chromium on loopback. Correctness only (the
figures are ``bench/weak_link.py --teller chromium``): the call connects through the relay,
the browser decodes and presents the customer's video and plays audio, and after a 2 s
outage the browser presents new frames again on the same call, without the terminal
rebuilding it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, async_playwright

from cuntong.servers.coturn import Coturn
from cuntong.servers.janus import Janus
from edge.teller.call import Phase
from tests.helpers import eventually
from tests.teller.browser import CHROMIUM, FLAGS
from tests.teller.browser_weaklink import (
    concealments,
    frame_gaps,
    stats_delta,
    weak_browser_call,
)
from tests.teller.test_turn_relay import nominated_types
from tests.teller.weaklink import village


@pytest.fixture
async def page(site: str) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{site}/index.html")
            yield page
        finally:
            await browser.close()


async def test_chromium_teller_sees_the_terminal_over_a_lossy_link_and_after_an_outage(
    cors_janus: Janus, relay_coturn: Coturn, page: Page
) -> None:
    link = village(rate_kbps=300, rtt_ms=200, loss=0.03)
    async with weak_browser_call(cors_janus, relay_coturn, page, link, link) as call:
        relay, peer = call.terminal.relay, call.terminal.peer
        assert peer._pub_pc is not None
        assert set(nominated_types(peer._pub_pc)) == {"relay"}  # through coturn, so the relay

        async def presented_more_than(n: int) -> bool:
            return len(await call.frames_at()) > n

        async def audio_more_than(n: float) -> bool:
            samples = await call.samples()
            return bool(samples) and samples[-1]["audio"].get("totalSamplesReceived", 0) > n

        # The browser presents the customer's video and plays the customer's audio.
        await eventually(lambda: presented_more_than(20), 60, every=0.2)
        await eventually(lambda: audio_more_than(48_000), 60, every=0.2)
        await eventually(
            lambda: _is(min(relay.up.stats.delivered, relay.down.stats.delivered) > 200), 30
        )
        await eventually(lambda: _is(relay.up.stats.lost > 0), 30)  # the loss was really there

        relay.outage(2.0)
        await asyncio.sleep(2.0)
        assert relay.up.stats.outage_dropped > 0 and relay.down.stats.outage_dropped > 0
        after = len(await call.frames_at())
        # New frames after the outage, on the same call.
        await eventually(lambda: presented_more_than(after + 20), 60, every=0.2)
        samples = await call.samples()
        assert samples[-1]["video"]["framesDecoded"] > 0
        assert call.terminal.client.call.phase is Phase.IN_CALL
        assert peer.publications == 1  # recovered in place, not rebuilt


async def _is(value: bool) -> bool:
    return value


def _audio(t: float, concealed: int, events: int, total: int = 0) -> dict[str, object]:
    return {"t": t, "video": {}, "audio": {"concealedSamples": concealed,
            "concealmentEvents": events, "totalSamplesReceived": total}}  # fmt: skip


def test_the_browser_records_read_as_freezes_and_concealments() -> None:
    assert frame_gaps([0, 66, 133, 900, 966, 2100], 500) == [(133, 767), (966, 1134)]
    samples = [
        _audio(0, 0, 0),
        _audio(100, 960, 1),  # one 20 ms concealment
        _audio(200, 960, 1),
        _audio(300, 960 + 4800, 2),  # a new one, running on into the next sample
        _audio(400, 960 + 9600, 2),
        _audio(500, 960 + 9600 + 960, 3),  # a third starts at once: not merged
        _audio(600, 960 + 9600 + 960, 3),
    ]
    assert concealments(samples) == [(0, 0.02), (200, 0.2), (400, 0.02)]
    # a counter that starts over (the page subscribed again) adds its new growth
    grown = [_audio(0, 0, 0, 100), _audio(100, 0, 0, 300), _audio(200, 0, 0, 50)]
    assert stats_delta(grown, "audio", "totalSamplesReceived") == 250
