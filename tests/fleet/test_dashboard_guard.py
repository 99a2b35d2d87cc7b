"""The fleet dashboard's rollout page shows the significance guard's abort table, in real
headless Chromium against a live cloud, for a model rollout the real guard aborted.

The abort is made by the producers' own code before the cloud starts, on the database the
cloud then serves: the rollout by `fleet.rollouts.create`, the liveness verdicts by the
terminal's `edge.vision.verdict.decide`, the session rows and quality reviews by the desk's
store and `cloud.quality.service`, and the abort by one beat of `fleet.rollouts.RolloutEngine`
(Fisher's exact test, or the default always-valid test, in `fleet.significance`; the audit
record `record_guard_abort`), as in `test_model_outcomes.py`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.db import close_db, open_db
from common import procs
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from fleet import rollout as ro
from tests.fleet.test_dashboard import browser  # noqa: F401 - the Chromium fixture
from tests.fleet.test_model_outcomes import DEFAULT_GUARD, _guard, _rollout, _sessions
from tests.helpers import OPERATOR, OPERATOR_PASSWORD, start_cloud
from tests.screens import CHROMIUM, shot

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian chromium missing")


async def test_rollout_page_shows_the_guard_abort_table(
    tmp_path: Path,
    broker: Broker,
    victoria: VictoriaMetrics,
    browser: Browser,  # noqa: F811
) -> None:
    url = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
    EXECUTOR_CACHE.clear()
    await open_db(url)
    try:
        # 15 of 30 new-version sessions to manual review against 3 of 30 in the control
        # group: Fisher's exact p = 0.0015, under 0.01 / 3.
        doc, r = await _rollout(_guard(), _sessions(30, reviews=15), _sessions(30, reviews=3))
    finally:
        await close_db()
    assert r.phase is ro.Phase.ROLLING_BACK

    cloud = start_cloud(tmp_path, url, broker.cfg.port, victoria.url)
    try:
        page = await browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        guard = await _guard_panel(page, cloud.url, doc.id)
        await expect(guard.locator("h2")).to_have_text(
            "Aborted on liveness outcomes (Fisher's exact test) · Control group: control"
        )
        rows = guard.locator("tbody tr")
        await expect(rows).to_have_count(3)
        # The breached rate first, with both sides' counts, its p-value and the level.
        first = rows.nth(0)
        await expect(first).to_contain_text("Manual review rate")
        await expect(first).to_contain_text("15/30 (50.0%)")
        await expect(first).to_contain_text("3/30 (10.0%)")
        await expect(first).to_contain_text("0.00151")
        await expect(first).to_contain_text("0.00333 (two-sided)")
        await expect(first.locator(".badge")).to_have_text("Breached")
        # The pass rate is the complement here (every session either passed or went to
        # review), so it breaches too; the overturn rate had too few reviewed passes on the
        # new version to be judged, and shows no badge.
        passes = rows.filter(has_text="Pass rate")
        await expect(passes).to_contain_text("15/30 (50.0%)")
        await expect(passes).to_contain_text("27/30 (90.0%)")
        await expect(passes.locator(".badge")).to_have_text("Breached")
        overturn = rows.filter(has_text="QA overturn rate")
        await expect(overturn).to_contain_text("too few")
        await expect(overturn.locator(".badge")).to_have_count(0)
        await expect(page.locator("#view")).to_contain_text(
            "manual-review rate 50.0% (15/30) vs control group 'control' 10.0% (3/30)"
        )
        await shot(page, tmp_path / "guard-abort.png")
        assert errors == []
    finally:
        procs.stop(cloud.proc)


async def test_an_always_valid_abort_is_titled_by_its_test(
    tmp_path: Path,
    broker: Broker,
    victoria: VictoriaMetrics,
    browser: Browser,  # noqa: F811
) -> None:
    """The default guard (always-valid over every beat's look) aborts 20 of 40 reviews
    against 2 of 40; the page says which test it was and shows its p-value."""
    url = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
    EXECUTOR_CACHE.clear()
    await open_db(url)
    try:
        doc, r = await _rollout(DEFAULT_GUARD, _sessions(40, reviews=20), _sessions(40, reviews=2))
    finally:
        await close_db()
    assert r.phase is ro.Phase.ROLLING_BACK

    cloud = start_cloud(tmp_path, url, broker.cfg.port, victoria.url)
    try:
        page = await browser.new_page(viewport={"width": 1366, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        guard = await _guard_panel(page, cloud.url, doc.id)
        await expect(guard.locator("h2")).to_have_text(
            "Aborted on liveness outcomes (always-valid sequential test) · Control group: control"
        )
        first = guard.locator("tbody tr").nth(0)
        await expect(first).to_contain_text("20/40 (50.0%)")
        await expect(first).to_contain_text("0.000664")
        await expect(first.locator(".badge")).to_have_text("Breached")
        assert errors == []
    finally:
        procs.stop(cloud.proc)


async def _guard_panel(page: Page, cloud_url: str, rollout_id: object) -> Locator:
    """Log in as the operator, open the rollout's page in English; its guard-abort panel."""
    await page.goto(f"{cloud_url}/fleet/")
    await page.fill("#username", OPERATOR)
    await page.fill("#password", OPERATOR_PASSWORD)
    await page.click("#login button")
    await expect(page.locator("#who")).to_have_text(OPERATOR)
    await page.click("text=English")
    await page.click("text=Rollouts")
    await page.click("#rollout-table >> text=bank models")
    await expect(page).to_have_url(re.compile(f"#/rollout/{rollout_id}$"))
    guard = page.locator("#guard-abort")
    await expect(guard).to_be_visible(timeout=15_000)
    return guard
