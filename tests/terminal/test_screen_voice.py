"""The customer screen speaks, in headless Chromium against the real ``Screen`` server.

What the page shows is the catalogue's sentence, the page loads that sentence's WAV from
the agent (synthesised by espeak-ng), plays it at the configured volume, 再听一遍 plays it
again, and the language and over-60 choices go out with the request. The page is also
measured: text at least 32 px, buttons at least 15 mm (57 CSS px), and every colour pair in
the stylesheet meets WCAG contrast.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import wave
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import orjson
from playwright.async_api import Page, async_playwright

from common.wire import call as wire
from edge.teller import prompts
from edge.teller.client import TellerClient
from edge.teller.paperwork import Paperwork
from edge.teller.screen import Screen
from edge.teller.voice import Voice
from tests.helpers import eventually

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",  # as the kiosk launcher starts it
]
MIN_TEXT_PX = 32
MIN_TARGET_PX = 15 / 25.4 * 96  # 15 mm at CSS's 96 px per inch


async def _true(value: object) -> object:
    return value


def _client(published: list[dict[str, Any]]) -> TellerClient:
    async def publish(payload: bytes) -> None:
        published.append(orjson.loads(payload))

    async def no_capture(kind: str) -> None:
        return None

    return TellerClient(
        publish,
        lambda *a: None,  # type: ignore[arg-type,return-value]
        lambda send: Paperwork(send, no_capture),
        lambda: dt.datetime.now(dt.UTC),
    )


async def _too_small(page: Page) -> list[str]:
    """Visible text under 32 px and visible buttons under 15 mm, as Chromium lays them out."""
    return await page.evaluate(
        """([minText, minTarget]) => {
      const bad = [];
      for (const el of document.querySelectorAll("main *")) {
        const r = el.getBoundingClientRect();
        if (!r.width || !r.height || el.closest("[hidden]")) continue;
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        const size = parseFloat(getComputedStyle(el).fontSize);
        if (own && size < minText) bad.push(`${el.id || el.tagName} text ${size}px`);
        if (el.tagName === "BUTTON" && (r.width < minTarget || r.height < minTarget))
          bad.push(`${el.id || el.textContent} ${r.width}x${r.height}px`);
      }
      return bad;
    }""",
        [MIN_TEXT_PX, MIN_TARGET_PX],
    )


async def test_the_screen_speaks_what_it_shows(tmp_path: Path) -> None:
    published: list[dict[str, Any]] = []
    client = _client(published)
    volume = [35]
    heard: list[str] = []
    server = Screen(client, None, 0, voice=Voice(tmp_path / "voice"), volume=lambda: volume[0])
    async with server as screen, async_playwright() as pw:
        base = f"http://127.0.0.1:{screen.port}"
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 1024})

        async def on_response(response: Any) -> None:
            if "/voice/" in response.url and response.status == 200:
                heard.append(response.url.removeprefix(base))

        page.on("response", on_response)
        await page.goto(base + "/")
        idle = prompts.say("idle")
        await page.locator("#message").filter(has_text=idle.text).wait_for(timeout=10_000)
        audio = f"/voice/{idle.audio_id}.wav"
        await eventually(lambda: _true(audio in heard))
        assert await page.eval_on_selector("#voice", "a => a.volume") == 0.35
        assert await _too_small(page) == []

        # the WAV the page fetched is speech: the catalogue's sentence synthesised
        async with httpx.AsyncClient(base_url=base) as http:
            wav = (await http.get(audio)).content
            with wave.open(BytesIO(wav)) as w:
                assert w.getnframes() / w.getframerate() > 1.0
            missing = await http.get("/voice/0123456789abcdef01234567.wav")
            assert missing.status_code == 404
            assert "no prompt" in missing.json()["error"]
            wrong = await http.post("/ask", json={"business": "pension", "language": "fr"})
            assert wrong.status_code == 409
            assert "unknown language 'fr'" in wrong.json()["error"]

        # 再听一遍 fetches and plays the same sentence again
        before = heard.count(audio)
        await page.get_by_role("button", name="再听一遍").click()
        await eventually(lambda: _true(heard.count(audio) > before))

        # choosing: the catalogue's sentence, the languages from the catalogue, the 60+ choice
        await page.get_by_role("button", name="视频柜员").click()
        choose = prompts.say("choose")
        await page.locator("#message").filter(has_text=choose.text).wait_for(timeout=5000)
        await eventually(lambda: _true(f"/voice/{choose.audio_id}.wav" in heard))
        assert await page.locator("#language-says").inner_text() == prompts.ROWS["language"]
        for _, label in prompts.LANGUAGES:
            assert await page.get_by_role("button", name=label).is_visible()
        assert await _too_small(page) == []
        await page.get_by_role("button", name="陕西话").click()
        await page.get_by_role("button", name="我已满 60 岁").click()
        await page.get_by_role("button", name="养老金认证").click()
        await eventually(lambda: _true(published))
        request = published[0]
        assert (request["language"], request["elderly"]) == ("zh-shaanxi", True)

        # waiting: the sentence and its voice follow the phase; the volume follows the config
        volume[0] = 90
        waiting = prompts.say("waiting")
        await page.locator("#message").filter(has_text=waiting.text).wait_for(timeout=5000)
        await eventually(lambda: _true(f"/voice/{waiting.audio_id}.wav" in heard))
        await eventually(lambda: page.eval_on_selector("#voice", "a => a.volume === 0.9"))
        assert await _too_small(page) == []

        # nobody on duty: the desk cannot say how long, so the screen offers a ring-back
        queued = wire.Queued("s-ring", 2, None, None, request["request_id"])
        await client.on_desk(queued.to_bytes())
        ring = page.get_by_role("button", name=prompts.ROWS["ring_back.button"])
        await ring.wait_for(timeout=5000)
        assert await _too_small(page) == []
        await ring.click()
        rest = prompts.say("ring_back.waiting")
        await page.locator("#message").filter(has_text=rest.text).wait_for(timeout=5000)
        await eventually(lambda: _true(f"/voice/{rest.audio_id}.wav" in heard))
        assert not await ring.is_visible()
        # still queued (no cancel); the desk is told the customer may step away
        assert client.call.ring_back
        assert published[1:] == [{"type": "ring_back", "session": "s-ring"}]
        await browser.close()
        await asyncio.sleep(0)


async def test_a_timed_screen_asks_before_it_gives_up(tmp_path: Path) -> None:
    published: list[dict[str, Any]] = []
    heard: list[str] = []
    short = {"choose": {"after_s": 6, "warn_s": 3}, "rating": {"after_s": 6, "warn_s": 3}}
    server = Screen(_client(published), None, 0, voice=Voice(tmp_path / "v"), timeouts=short)
    async with server as screen, async_playwright() as pw:
        base = f"http://127.0.0.1:{screen.port}"
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 1024})
        page.on("response", lambda r: heard.append(r.url.removeprefix(base)))
        await page.goto(base + "/")
        await page.get_by_role("button", name="视频柜员").click()
        message = page.locator("#message")
        await message.filter(has_text=prompts.ROWS["choose"]).wait_for(timeout=5000)
        # nobody touches: asked out loud first, then back to the start
        still = prompts.say("still_there")
        await message.filter(has_text=still.text).wait_for(timeout=10_000)
        await eventually(lambda: _true(f"/voice/{still.audio_id}.wav" in heard))
        assert await page.get_by_role("button", name="养老金认证").is_visible()  # not yet gone
        await message.filter(has_text=prompts.ROWS["idle"]).wait_for(timeout=10_000)
        assert await page.get_by_role("button", name="视频柜员").is_visible()
        assert published == []  # giving up sent nothing
        await browser.close()


# -- contrast, from the stylesheet itself -------------------------------------------------


def _luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def colour_pairs(css: str) -> dict[str, tuple[str, str]]:
    """selector -> (text colour, background) for every rule that sets a background; the
    text colour is the rule's own or the body's."""
    rules = dict(re.findall(r"([^{}]+)\{([^}]*)\}", css))
    rules = {sel.strip().splitlines()[-1].strip(): body for sel, body in rules.items()}

    def prop(body: str, name: str) -> str | None:
        found = re.search(rf"(?:^|;)\s*{name}\s*:\s*(#[0-9a-fA-F]{{3,6}})", body)
        return found.group(1) if found else None

    body_colour = prop(rules["body"], "color")
    assert body_colour is not None
    pairs = {}
    for selector, body in rules.items():
        background = prop(body, "background")
        if background is not None:
            pairs[selector] = (prop(body, "color") or body_colour, background)
    return pairs


#: the two video frames: their background shows before the first picture, behind no text
NO_TEXT = {"#teller", "#self"}


def test_the_screen_colours_meet_wcag_contrast() -> None:
    css = resources.files("edge.teller").joinpath("static", "screen.css").read_text()
    pairs = colour_pairs(css)
    assert pairs.keys() >= NO_TEXT
    pairs = {sel: pair for sel, pair in pairs.items() if sel not in NO_TEXT}
    assert {"body", ".message", ".huge", ".go", ".danger", ".plain", ".again"} <= pairs.keys()
    ratios = {sel: round(contrast(fg, bg), 2) for sel, (fg, bg) in pairs.items()}
    # WCAG AA for normal text is 4.5:1; the screen's text is all large, yet holds to 4.5
    assert {sel: r for sel, r in ratios.items() if r < 4.5} == {}, ratios
    assert contrast("#000", "#fff") == 21.0
    assert round(contrast("#777", "#fff"), 2) == 4.48  # a grey that would fail: the check bites
