"""In a real browser (issue #8 item 6): when an admin deactivates an agent, the agent's open
console loses its live stream at once and shows the login form instead of retrying."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from handover.auth import create_agent, issue_api_token
from resonanz.store import Database
from tests.browser.conftest import browser  # noqa: F401 - the fixture
from tests.security.auth_support import PASSWORD, gateway

pytestmark = pytest.mark.browser


async def test_a_deactivated_agents_console_returns_to_the_login(database: Database, tmp_path: Path,
                                                                  browser: Browser) -> None:  # noqa: F811
    admin = await create_agent(database, email="admin@example.org", password=PASSWORD, display_name="Admin", role="admin")
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    admin_h = {"Authorization": f"Bearer {await issue_api_token(database, admin.id)}"}
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        context = await browser.new_context(locale="de-DE")
        stack.push_async_callback(context.close)
        page = await context.new_page()
        await page.goto(str(gw.make_url("/console")))
        await page.get_by_test_id("login-email").fill("anna@example.org")
        await page.get_by_test_id("login-password").fill(PASSWORD)
        await page.get_by_test_id("login-submit").click()
        await expect(page.get_by_test_id("live")).to_have_text("live", timeout=15_000)
        resp = await gw.patch(f"/api/v1/agents/{anna.id}", json={"active": False}, headers=admin_h)
        assert resp.status == 200
        await expect(page.get_by_test_id("login-email")).to_be_visible(timeout=15_000)
