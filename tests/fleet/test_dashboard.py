"""The fleet dashboard in real headless Chromium (Debian's), against a live cloud and agents."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from cloud.security import broker_services
from cuntong.servers.victoria import VictoriaMetrics
from edge.agent import Agent
from tests.fleet.conftest import Agents
from tests.helpers import (
    OPERATOR,
    OPERATOR_PASSWORD,
    CloudProcess,
    enrolled_link,
    eventually,
    secured_cloud,
)
from tests.integration.agents import agent_settings, new_id
from tests.screens import CHROMIUM, shot

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium missing")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield b
        finally:
            await b.close()


async def test_dashboard_overview_terminals_commands_and_rollouts(
    tmp_path: Path, cloud: CloudProcess, agents: Agents, browser: Browser
) -> None:
    a, b = new_id("DA"), new_id("DB")
    await agents.start(a)
    await agents.start(b, county="渭滨区")
    async with cloud.client() as http:

        async def both_online() -> bool:
            r = await http.get("/api/v1/fleet/terminals", params={"status": "online"})
            return {a, b} <= {t["id"] for t in r.json()["items"]}

        await eventually(both_online)
        await http.post(
            "/api/v1/fleet/groups", json={"name": "dash", "kind": "static", "members": [a, b]}
        )
        ro = await http.post(
            "/api/v1/fleet/rollouts",
            json={
                "name": "自检 self-test",
                "group": "dash",
                "action": "peripheral_selftest",
                "rollback_action": None,
                "plan": {"canary": 1, "wave_size": 1, "min_finished": 1},
            },
        )
        assert ro.status_code == 201, ro.text

    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{cloud.url}/fleet/")
    await expect(page.locator("#view")).to_contain_text("请先以运维人员身份登录")
    await page.fill("#username", OPERATOR)
    await page.fill("#password", OPERATOR_PASSWORD)
    await page.click("#login button")
    await expect(page.locator("h1")).to_have_text("终端总览")
    await expect(page.locator("#who")).to_have_text(OPERATOR)
    await expect(page.locator("#login")).to_be_hidden()
    await expect(page.locator("#kpi-online .kpi")).to_contain_text("2")
    await expect(page.locator("#region-tree")).to_contain_text("陕西省")
    await shot(page, tmp_path / "overview.png")

    await page.click("text=English")
    await expect(page.locator("h1")).to_have_text("Fleet overview")
    await page.click("#region-tree >> text=渭滨区")
    await expect(page.locator("#terminal-table tbody tr")).to_have_count(1)
    await expect(page.locator("#terminal-table")).to_contain_text(b)
    await shot(page, tmp_path / "terminals.png")

    await page.click(f"#terminal-table >> text={b}")
    await expect(page.locator("h1")).to_contain_text(b)
    await page.click("[data-command=lock_screen]")
    await expect(page.locator("#view")).to_contain_text("succeeded", timeout=15_000)
    await expect(page.locator("#charts svg path").first).to_be_attached(timeout=20_000)
    await shot(page, tmp_path / "terminal.png")
    assert agents.running[b][0].mdm.screen["locked"] is True

    await page.click("text=Rollouts")
    await expect(page.locator("#rollout-table")).to_contain_text("succeeded", timeout=15_000)
    await page.click("#rollout-table >> text=self-test")
    await expect(page.locator("#waves tbody tr")).to_have_count(2)
    await expect(page.locator("#waves")).to_contain_text("succeeded 1")
    await shot(page, tmp_path / "rollout.png")

    # Liveness outcomes per model version: these agents ran no session, so the page (and
    # the real API behind it) shows the "all" group and an empty table; the figures
    # themselves are tested against real session records in test_model_outcomes.py.
    await page.click("text=Liveness models")
    await expect(page.locator("h1")).to_have_text("Liveness outcomes per model version")
    await expect(page.locator("#model-outcomes")).to_be_visible()
    assert errors == []


async def test_a_desired_shadow_edit_is_checked_as_typed_and_refused_by_the_api_by_field(
    tmp_path: Path, cloud: CloudProcess, agents: Agents, browser: Browser
) -> None:
    tid = new_id("DS")
    agent = await agents.start(tid)
    async with cloud.client() as http:

        async def online() -> bool:
            r = await http.get("/api/v1/fleet/terminals", params={"status": "online"})
            return tid in {t["id"] for t in r.json()["items"]}

        await eventually(online)
        # The API: an unknown key, a wrong type, a value out of range, each named; nothing kept.
        for bad, field in (
            ({"bogus": 1}, "bogus"),
            ({"telemetry_interval_s": "fast"}, "telemetry_interval_s"),
            ({"voice_volume": 101}, "voice_volume"),
            ({"screen": {"locked": True, "colour": "red"}}, "screen.colour"),
        ):
            r = await http.patch(f"/api/v1/fleet/shadows/{tid}/desired", json=bad)
            assert r.status_code == 422, r.text
            assert r.json()["detail"]["field"] == field, r.text
            assert r.json()["detail"]["error"].startswith(f"{field}: "), r.text
        assert (await http.get(f"/api/v1/fleet/shadows/{tid}")).json()["desired_version"] == 0

    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{cloud.url}/fleet/#/terminal/{tid}")
    await page.fill("#username", OPERATOR)
    await page.fill("#password", OPERATOR_PASSWORD)
    await page.click("#login button")
    editor, error, apply = (
        page.locator("#shadow-edit"),
        page.locator("#shadow-error"),
        page.locator("#shadow-apply"),
    )
    await expect(editor).to_be_visible()
    # The dashboard: the same schema as the API, checked as the operator types.
    for text, message in (
        ('{"bogus": 1}', "bogus: unknown field"),
        ('{"telemetry_interval_s": "fast"}', "telemetry_interval_s: must be a number"),
        ('{"voice_volume": 101}', "voice_volume: must be at most 100"),
        ('{"screen": {"locked": "yes"}}', "screen.locked: must be true or false"),
        ('{"telemetry_interval_s": ', "JSON:"),
    ):
        await editor.fill(text)
        await expect(error).to_contain_text(message)
        await expect(apply).to_be_disabled()
    await page.wait_for_timeout(2500)  # a refresh passes: the draft and its error stay
    await expect(editor).to_have_value('{"telemetry_interval_s": ')
    await shot(page, tmp_path / "shadow-invalid.png")

    await editor.fill('{"telemetry_interval_s": 2.5, "log_level": "WARNING"}')
    await expect(error).to_have_text("")
    await apply.click()
    await expect(page.locator("#view")).to_contain_text("已同步", timeout=20_000)
    await eventually(lambda: _interval(agent, 2.5), timeout=20)

    # What the page's own check lets through, the API still refuses, and the page names
    # the field it was told (the schema is hidden from this page to get there).
    second = await browser.new_page(viewport={"width": 1366, "height": 900})
    await second.route("**/api/v1/fleet/shadows/schema", lambda route: route.fulfill(json={}))
    await second.goto(f"{cloud.url}/fleet/#/terminal/{tid}")
    await second.fill("#username", OPERATOR)  # a new page is a new browser context
    await second.fill("#password", OPERATOR_PASSWORD)
    await second.click("#login button")
    await expect(second.locator("#shadow-edit")).to_be_visible()
    await second.locator("#shadow-edit").fill('{"voice_volume": 101}')
    await second.locator("#shadow-apply").click()
    await expect(second.locator("#shadow-error")).to_contain_text("voice_volume: ")
    await shot(second, tmp_path / "shadow-refused.png")
    assert errors == []


async def _interval(agent: object, want: float) -> bool:
    return getattr(agent, "telemetry_interval_s", None) == want


@pytest.mark.servers
async def test_one_click_disables_a_terminal_at_the_broker_and_one_enables_it(
    tmp_path: Path, victoria: VictoriaMetrics, browser: Browser
) -> None:
    """Issue 21's "one click": on the secured stack (mTLS broker with dynamic security), an
    operator opens a real enrolled agent's page, clicks 在代理处停用 and confirms: the agent
    is cut off at once and stays off (its certificate still connects, but its own topics
    are refused, so it keeps retrying); 在代理处恢复 lets it back, subscribed again, and
    what it queued meanwhile is stored. Both clicks are audited."""
    extra = {"CUNTONG_FLEET_MISBEHAVIOUR_FLAPS": "0"}
    with secured_cloud(tmp_path, victoria.url, broker_services("api"), **extra) as (_, _, cloud):
        tid = new_id("CLK")
        settings = agent_settings(
            tmp_path, 1, tid, simulate=False, telemetry_interval_s=1, backoff_base_s=0.2,
            backoff_cap_s=1.0,
        )  # fmt: skip
        link = await enrolled_link(cloud.url, settings.state_dir, tid)
        agent = Agent(settings, link=link)
        run = asyncio.create_task(agent.run())
        try:
            await asyncio.wait_for(agent.connected.wait(), 20)
            async with cloud.client() as http:

                async def known() -> bool:
                    return (await http.get(f"/api/v1/terminals/{tid}")).status_code == 200

                await eventually(known, timeout=20)

            page = await browser.new_page(viewport={"width": 1366, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
            await page.goto(f"{cloud.url}/fleet/")
            await page.fill("#username", OPERATOR)
            await page.fill("#password", OPERATOR_PASSWORD)
            await page.click("#login button")
            await expect(page.locator("h1")).to_have_text("终端总览")
            await page.evaluate(f"location.hash = '#/terminal/{tid}'")
            access = page.locator("#broker-access")
            await expect(access).to_contain_text("代理：允许", timeout=20_000)

            agent.connected.clear()
            await access.locator("button[data-broker=disable]").click()
            await expect(access).to_contain_text("代理：已停用", timeout=20_000)
            async with cloud.client() as http:

                async def cut() -> bool:
                    state = (await http.get(f"/api/v1/fleet/terminals/{tid}/broker")).json()
                    return state["enabled"] is False and not agent.connected.is_set()

                await eventually(cut, timeout=20)
                await asyncio.sleep(3)  # the agent keeps retrying; the broker keeps it out
                assert not agent.connected.is_set()

                await access.locator("button[data-broker=enable]").click()
                await expect(access).to_contain_text("代理：允许", timeout=20_000)
                await asyncio.wait_for(agent.connected.wait(), 30)
                # Back with its own topics granted: what it queued while cut off is
                # stored and confirmed (the spool empties).
                await eventually(lambda: _true(agent.spool.depth() == 0), timeout=30)
            await shot(page, tmp_path / "broker-access.png")
            assert errors == []
        finally:
            agent.stop()
            await run
    with sqlite3.connect(tmp_path / "cloud.sqlite3") as db:
        rows = db.execute(
            "select actor, action, target from audit_entry"
            " where action like 'fleet_broker_%' order by id"
        ).fetchall()
    assert [(action, target) for _, action, target in rows] == [
        ("fleet_broker_disable", tid),
        ("fleet_broker_enable", tid),
    ]
    assert {actor for actor, _, _ in rows} == {OPERATOR}


async def _true(value: bool) -> bool:
    return value
