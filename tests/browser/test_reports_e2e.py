"""The reports page in a real browser (Debian's Chromium): on generated history whose figures are
known (tests/support/report_data.py), every table shows exactly those figures, every chart is drawn
from them, the filters narrow them, the CSV links give them, names stay text, and axe-core finds
no serious or critical violation. No engine is needed (the reports never talk to it)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Page, expect

from handover.auth import create_agent
from resonanz.settings import Settings
from resonanz.store import Database
from tests.browser.axe import assert_accessible
from tests.conftest import free_port, make_database_url, migrated_database
from tests.support.report_data import DAY, EXPECTED, seed

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
PASSWORD = "geheim-geheim-42"


def shown(value: object) -> str:
    """How the page writes a figure (JavaScript's String(), "–" for none)."""
    if value is None:
        return "–"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[str, Database]]:
    from resonanz.app import create_app

    url, drop = await make_database_url("sqlite", tmp_path)
    db = await migrated_database(url)
    port = free_port()
    settings = Settings(DATABASE_URL=url, engine_url=f"http://127.0.0.1:{free_port()}",
                        connectors=("rest",), var_dir=tmp_path, host="127.0.0.1", port=port)
    runner = web.AppRunner(await create_app(settings, db=db), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", db
    finally:
        await runner.cleanup()
        await db.dispose()
        await drop()


async def test_reports_page_shows_the_known_figures(gateway: tuple[str, Database], page: Page) -> None:
    base, db = gateway
    await seed(db)
    await create_agent(db, email="sup@example.org", password=PASSWORD, display_name="Sabine", role="supervisor")
    errors: list[str] = []
    # Script errors and CSP refusals (the console's own 401 before login and the favicon's 404 aside).
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(base + "/console")
    await page.get_by_test_id("login-email").fill("sup@example.org")
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await page.get_by_test_id("reports-link").click()
    await expect(page).to_have_url(base + "/console/reports")
    await page.get_by_test_id("filter-from").fill(DAY)
    await page.get_by_test_id("filter-to").fill(DAY)
    await page.get_by_test_id("filter-apply").click()
    await expect(page).to_have_url(f"{base}/console/reports?from={DAY}&to={DAY}")

    for report, tables in EXPECTED.items():
        await expect(page.get_by_test_id(f"report-{report}")).to_have_attribute("aria-busy", "false")
        for name, rows in tables.items():
            table = page.get_by_test_id(f"table-{report}-{name}")
            body = table.locator("tbody tr")
            await expect(body).to_have_count(len(rows))
            got = await table.locator("tbody tr").evaluate_all(
                "trs => trs.map(tr => [...tr.children].map(td => td.textContent))")
            assert got == [[shown(v) for v in row] for row in rows], (report, name)
    # The charts are drawn (a canvas each) from exactly the table's figures.
    chart = page.get_by_test_id("chart-csat-distribution")
    await expect(chart.locator("canvas")).to_have_count(1)
    assert json.loads(await chart.get_attribute("data-series")) == {
        "labels": ["1", "2", "3", "4", "5"], "series": [[0, 1, 0, 0, 1]]}
    assert json.loads(await page.get_by_test_id("chart-intents-not_understood").get_attribute("data-series")) == {
        "labels": [DAY], "series": [[0.4286]]}
    assert json.loads(await page.get_by_test_id("chart-waiting-waiting").get_attribute("data-series")) == {
        "labels": ["billing-de", "general-en"], "series": [[120, 300], [120, 300]]}
    assert "Ben <b>: 2" in await page.get_by_test_id("chart-csat-by_agent").get_attribute("aria-label")
    # A name with markup stays text.
    assert await page.get_by_test_id("table-csat-by_agent").locator("b").count() == 0
    # The CSV link of a table gives the same figures.
    href = await page.get_by_test_id("csv-handovers-by_reason").get_attribute("href")
    resp = await page.request.get(base + href)
    assert resp.ok
    assert (await resp.text()).splitlines() == ["reason,trigger,handovers", "bot_stuck,fallbacks,1",
                                                "customer_request,intent,1", "customer_request,pattern,1"]
    # A filter narrows every report.
    await page.get_by_test_id("filter-channel").select_option("telegram")
    await page.get_by_test_id("filter-apply").click()
    containment = page.get_by_test_id("table-containment-containment").locator("tbody tr")
    await expect(containment).to_have_count(3)
    await expect(containment.last).to_have_text("(all)(all)2110.5")
    await expect(page.get_by_test_id("table-handovers-by_reason").locator("tbody tr")).to_have_text(["customer_requestpattern1"])
    await assert_accessible(page)
    assert not errors, errors
