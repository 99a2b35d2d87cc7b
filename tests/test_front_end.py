"""The front end's one module style, on the real servers: every page loads only ES modules,
every module it imports is served, and the shared ones (``common/web``: ``/ui/dom.js``,
``/ui/i18n.js``, ``/ui/login.js``) come from the cloud app and from the agent's customer-screen
server alike, nothing else under ``/ui/``. Every page's English names every Chinese key, and
the pages that used to be Chinese only (or carry both languages at once) switch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.async_api import async_playwright, expect

from common import procs, web
from common.settings import CloudSettings
from cuntong.app import create_app
from edge.teller.client import TellerClient
from edge.teller.paperwork import Paperwork
from edge.teller.screen import Screen
from tests.helpers import eventually
from tests.screens import CHROMIUM

ROOT = Path(__file__).resolve().parents[1]
CLOUD_PAGES = ["/teller", "/teller/watch", "/fleet/", "/api/v1/ops/screen"]
#: The modules holding each page's dictionaries (no DOM: node imports them).
DICTIONARIES = [
    ROOT / "cloud" / "sessions" / "static" / "teller-i18n.js",
    ROOT / "fleet" / "dashboard" / "i18n.js",
    ROOT / "edge" / "teller" / "static" / "screen-i18n.js",
]
IMPORT = re.compile(r"""^\s*import\s[^;]*?from\s+["']([^"']+)["']""", re.M | re.S)
Get = Callable[[str], Awaitable[httpx.Response]]


class Scripts(HTMLParser):
    """The <script> tags of a page: (attributes, inline text)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._open = dict(attrs)
            self.found.append((self._open, ""))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self.found[-1] = (self._open, self.found[-1][1] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._open = None


async def check_page(get: Get, path: str) -> set[str]:
    """Every script of the page at ``path`` is an ES module whose imports, followed all the
    way, are served as JavaScript; returns the module paths it loads."""
    page = await get(path)
    assert page.status_code == 200, path
    parser = Scripts()
    parser.feed(page.text)
    assert parser.found, f"{path} has no script"
    todo: list[str] = []
    for attrs, inline in parser.found:
        assert attrs.get("type") == "module", f"{path}: a classic <script {attrs}>"
        src = attrs.get("src")
        if src:
            todo.append(src)
        todo += IMPORT.findall(inline)
    loaded: set[str] = set()
    while todo:
        url = todo.pop()
        assert url.startswith("/"), f"{path}: {url} is not a path on this server"
        if url in loaded:
            continue
        loaded.add(url)
        module = await get(url)
        assert module.status_code == 200, f"{path} imports {url}: {module.status_code}"
        assert module.headers["content-type"].startswith("text/javascript"), url
        base = url.rsplit("/", 1)[0]
        for imported in IMPORT.findall(module.text):
            todo.append(f"{base}/{imported[2:]}" if imported.startswith("./") else imported)
    return loaded


async def check_shared(get: Get) -> None:
    for name in web.ASSETS:
        r = await get(f"/ui/{name}")
        assert r.status_code == 200 and r.content == web.asset(name)[0]  # type: ignore[index]
        assert r.headers["content-type"].startswith("text/javascript")
    for bad in ["/ui/__init__.py", "/ui/..%2F__init__.py", "/ui/%2e%2e/settings.py", "/ui/"]:
        assert (await get(bad)).status_code == 404, bad


@pytest.fixture
async def cloud_get(tmp_path: Path) -> AsyncIterator[Get]:
    app = create_app(CloudSettings(db_url=f"sqlite://{tmp_path / 'c.sqlite3'}", ingest=False))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
        yield http.get


@pytest.fixture
async def screen_get() -> AsyncIterator[Get]:
    async def publish(payload: bytes) -> None:
        return None

    async def no_capture(kind: str) -> None:
        return None

    client = TellerClient(
        publish,
        lambda *args: None,
        lambda send: Paperwork(send, no_capture),
        lambda: dt.datetime.now(dt.UTC),
    )
    async with Screen(client, None, 0) as screen:
        url = f"http://127.0.0.1:{screen.port}"
        async with httpx.AsyncClient(base_url=url) as http:
            yield http.get


async def test_cloud_pages_are_es_modules_on_the_shared_helpers(cloud_get: Get) -> None:
    for path in CLOUD_PAGES:
        loaded = await check_page(cloud_get, path)
        assert {"/ui/dom.js", "/ui/i18n.js", "/ui/login.js"} <= loaded, path
    await check_shared(cloud_get)


async def test_customer_screen_is_es_modules_on_the_shared_helpers(screen_get: Get) -> None:
    loaded = await check_page(screen_get, "/")
    assert {"/ui/dom.js", "/ui/i18n.js", "/screen.js"} <= loaded
    await check_shared(screen_get)


@pytest.mark.skipif(shutil.which("node") is None, reason="node missing")
def test_every_dictionary_has_both_languages_for_every_key() -> None:
    script = """
    import { readFileSync } from "node:fs";
    const out = {};
    for (const file of JSON.parse(process.argv[1])) {
      const source = readFileSync(file).toString("base64");
      const m = await import(`data:text/javascript;base64,${source}`);
      for (const [name, d] of Object.entries(m)) {
        if (d && d.zh && d.en) out[`${file}:${name}`] = [Object.keys(d.zh), Object.keys(d.en)];
      }
    }
    process.stdout.write(JSON.stringify(out));
    """
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script, json.dumps([str(p) for p in DICTIONARIES])],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout)
    assert len(found) >= 6  # teller, steps, languages, watch, fleet, customer screen
    for name, (zh, en) in found.items():
        assert sorted(zh) == sorted(en), name


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium missing")
async def test_the_newly_translated_pages_switch_to_english(
    tmp_path: Path, screen_get: Get
) -> None:
    """The big screen and the watch page by their button, the customer screen by the shared
    choice; Chinese before, no script errors."""
    app = create_app(CloudSettings(db_url=f"sqlite://{tmp_path / 'c.sqlite3'}", ingest=False))
    port = procs.free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    screen_url = str((await screen_get("/")).url)
    try:

        async def started() -> bool:
            return server.started

        await eventually(started)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(f"http://127.0.0.1:{port}/api/v1/ops/screen")
            await expect(page.locator("h2").first).to_have_text("今日会话")
            await page.click("#lang")
            await expect(page.locator("h2").first).to_have_text("Sessions today")
            await expect(page.locator("#user")).to_have_attribute("placeholder", "Username")
            await page.click("#lang")  # back to Chinese for the next page
            await page.goto(f"http://127.0.0.1:{port}/teller/watch")
            await expect(page.locator("#login h1")).to_have_text("主管登录")
            await page.click("#lang")
            await expect(page.locator("#login h1")).to_have_text("Supervisor sign-in")
            # The customer screen has no switch: the browser's shared choice decides.
            kiosk = await browser.new_page()
            kiosk.on("pageerror", lambda e: errors.append(str(e)))
            await kiosk.add_init_script("localStorage.setItem('cuntong.lang', 'en')")
            await kiosk.goto(screen_url)
            await expect(kiosk.locator("#start")).to_have_text("Video teller")
            await expect(kiosk.locator("#skip")).to_have_text("Skip")
            await browser.close()
        assert errors == []
    finally:
        server.should_exit = True
        await task
