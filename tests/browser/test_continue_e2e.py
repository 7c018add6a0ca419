"""Continue on another device in a real browser: the web chat's button shows a QR code and links;
a second browser opening the link continues the same conversation. Accessible (axe-core)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import expect
from sqlalchemy import select

from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store.models import ChannelIdentity
from tests.browser.axe import assert_accessible
from tests.conftest import make_database_url, migrated_database
from tests.support.scripted_engine import ScriptedEngine, serve_engine

pytestmark = [pytest.mark.browser]

BOT = '[data-testid="resonanz-message"][data-author="bot"]'
SYSTEM = '[data-testid="resonanz-message"][data-author="system"]'


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, object]]:
    tmp: Path = tmp_path_factory.mktemp("continue-browser")
    url, drop = await make_database_url("sqlite", tmp)
    db = await migrated_database(url)
    async with serve_engine(ScriptedEngine()) as engine_url:
        settings = Settings(DATABASE_URL=url, engine_url=engine_url, var_dir=tmp, connectors=("rest", "webchat"),
                            continue_telegram_bot="resonanz_test_bot", offer_choice_at_start=False)
        server = TestServer(await create_app(settings, db=db), host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/"), db
        finally:
            await server.close()
    await db.dispose()
    await drop()


async def test_the_continue_button_shows_a_qr_code_and_a_second_browser_continues(gateway, browser) -> None:  # noqa: ANN001
    base, db = gateway
    # bypass_csp: only so that the test can inject axe-core (the page itself runs under its CSP).
    laptop = await (await browser.new_context(locale="de-DE", bypass_csp=True)).new_page()
    laptop.set_default_timeout(10_000)
    await laptop.goto(base + "/chat")
    await expect(laptop.get_by_test_id("resonanz-status")).to_have_text("", timeout=15_000)
    # The chat mounts continue.js (an ES module) into a slot of its Shadow DOM; before the first
    # message there is nothing to continue: it says so.
    button = laptop.get_by_role("button", name="Auf anderem Gerät weiter")
    await button.click()
    await expect(laptop.get_by_test_id("resonanz-error")).to_have_text(
        "Schreiben Sie zuerst eine Nachricht – dann können Sie woanders weitermachen.")
    box = await button.bounding_box()
    assert box and box["height"] >= 44 and box["width"] >= 44  # a touch target
    await laptop.get_by_test_id("resonanz-input").fill("Hallo")
    await laptop.get_by_test_id("resonanz-send").click()
    await expect(laptop.locator(BOT)).to_have_count(1, timeout=15_000)
    await button.click()
    panel = laptop.get_by_test_id("resonanz-continue-panel")
    await expect(panel).to_be_visible()
    await expect(laptop.get_by_test_id("resonanz-error")).to_have_count(0)
    await expect(button).to_have_attribute("aria-expanded", "true")
    # Inside the chat's Shadow DOM, styled by app.css (the QR code is centred, the links are 44 px high).
    assert await panel.evaluate("el => el.getRootNode() instanceof ShadowRoot")
    assert await laptop.get_by_test_id("resonanz-continue-qr").evaluate("img => getComputedStyle(img).display") == "block"
    assert (await laptop.get_by_test_id("resonanz-continue-browser").bounding_box())["height"] >= 44
    qr = laptop.get_by_test_id("resonanz-continue-qr")
    assert (await qr.get_attribute("src")).startswith("data:image/svg+xml")
    assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")  # the SVG renders
    telegram = await laptop.get_by_test_id("resonanz-continue-telegram").get_attribute("href")
    link = await laptop.get_by_test_id("resonanz-continue-browser").get_attribute("href")
    assert telegram.startswith("https://t.me/resonanz_test_bot?start=rz") and "/chat?continue=rz" in link
    await assert_accessible(laptop)
    await laptop.get_by_test_id("resonanz-continue-close").click()
    await expect(panel).to_have_count(0)
    await expect(button).to_be_focused()

    phone = await (await browser.new_context(locale="de-DE")).new_page()
    await phone.goto(link)
    await expect(phone.locator(SYSTEM, has_text="Willkommen zurück")).to_have_count(1, timeout=15_000)
    await expect(phone.locator(BOT)).to_contain_text(["bot:greet"])  # the last answer, shown again
    customer = phone.locator('[data-testid="resonanz-message"][data-author="customer"]')
    texts = await customer.locator(".rz-text").all_inner_texts()
    assert sum("Gespräch fortsetzen" in t for t in texts) == 1, texts  # the code was sent once
    assert "continue=" not in phone.url  # the code left the address bar
    async with db.session() as s:  # type: ignore[attr-defined]
        owners = set((await s.scalars(select(ChannelIdentity.customer_id).where(ChannelIdentity.channel == "webchat"))).all())
    assert len(owners) == 1  # both browsers are one customer
    await phone.context.close()
    await laptop.context.close()


async def test_an_admin_merges_and_splits_customers_on_the_customers_page(gateway, browser) -> None:  # noqa: ANN001
    import secrets

    from handover.auth import create_agent

    base, db = gateway
    senders = [f"rest-{secrets.token_hex(4)}" for _ in range(2)]
    page = await (await browser.new_context(locale="de-DE", bypass_csp=True)).new_page()
    page.set_default_timeout(10_000)
    for sender in senders:
        resp = await page.request.post(base + "/webhooks/rest/webhook", data={"sender": sender, "message": "Hallo"})
        assert resp.ok
    async with db.session() as s:  # type: ignore[attr-defined]
        survivor, merged = [await s.scalar(select(ChannelIdentity.customer_id).where(ChannelIdentity.external_id == x))
                            for x in senders]
    email = f"admin-{secrets.token_hex(4)}@example.org"
    await create_agent(db, email=email, password="ein-langes-passwort", display_name="Ada Admin", role="admin")  # type: ignore[arg-type]
    resp = await page.request.post(base + "/api/v1/login", data={"email": email, "password": "ein-langes-passwort"})
    assert resp.ok, await resp.text()
    await page.goto(f"{base}/console/customers?customer={survivor}")
    identities = page.get_by_test_id("customers-identities").locator("li")
    await expect(identities).to_have_count(1)
    await page.get_by_test_id("customers-merged").fill(merged)
    await page.get_by_test_id("customers-merge").click()
    await expect(page.get_by_test_id("customers-status")).to_have_text("Zusammengeführt.")
    await expect(identities).to_have_count(2)
    await assert_accessible(page)
    await identities.nth(1).get_by_role("button", name="abtrennen").click()
    await expect(page.get_by_test_id("customers-status")).to_contain_text("Abgetrennt")
    await expect(identities).to_have_count(1)
    await page.context.close()
