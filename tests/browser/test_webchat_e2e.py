"""The web chat in a real browser against the real gateway and the real trained engine."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from bot.reference.demo_data import demo_account
from bot.reference.models import Account, MeterReading
from tests.conftest import LiveGateway

pytestmark = [pytest.mark.engine, pytest.mark.browser]

BOT = '[data-testid="resonanz-message"][data-author="bot"]'
SYSTEM = '[data-testid="resonanz-message"][data-author="system"]'
CUSTOMER = '[data-testid="resonanz-message"][data-author="customer"]'


async def say(page: Page, text: str, expect_bot_total: int | None = None) -> None:
    await page.get_by_test_id("resonanz-input").fill(text)
    await page.get_by_test_id("resonanz-send").click()
    if expect_bot_total is not None:
        await expect(page.locator(BOT)).to_have_count(expect_bot_total, timeout=30_000)


async def stored_readings(gw: LiveGateway, number: str) -> list[int]:
    async with gw.db.session() as s:
        return list((await s.scalars(select(MeterReading.value).where(MeterReading.customer_number == number))).all())


async def last_reading(gw: LiveGateway, number: str) -> int:
    """Accounts are shared by the tests of a session: read the current state first."""
    async with gw.db.session() as s:
        return (await s.get(Account, number)).last_reading


async def test_meter_reading_in_german_survives_a_reload(live_gateway: LiveGateway, page: Page) -> None:
    acc = demo_account("40056789")
    before = await stored_readings(live_gateway, acc.customer_number)
    last = await last_reading(live_gateway, acc.customer_number)
    await page.goto(live_gateway.url + "/chat")
    await expect(page.get_by_test_id("resonanz-status")).to_have_text("", timeout=15_000)
    await say(page, "Ich möchte meinen Zählerstand melden", 1)
    await expect(page.locator(BOT).last).to_contain_text("Kundennummer")
    await say(page, acc.customer_number, 2)
    await expect(page.locator(BOT).last).to_contain_text("Zählernummer")  # step-up verification
    await say(page, acc.meter_number[-4:], 3)
    await expect(page.locator(BOT).last).to_contain_text("Zählerstand")
    new = last + 120
    await say(page, str(new), 4)
    await expect(page.locator(BOT).last).to_contain_text("gespeichert")
    assert await stored_readings(live_gateway, acc.customer_number) == [*before, new]

    await page.reload()  # same session from localStorage: the history comes back
    await expect(page.locator(CUSTOMER)).to_have_count(4, timeout=15_000)
    await expect(page.locator(BOT)).to_have_count(4)
    await expect(page.locator(CUSTOMER).first.locator("p")).to_have_text("Ich möchte meinen Zählerstand melden")


async def test_meter_reading_in_english_with_an_implausible_value(live_gateway: LiveGateway, page: Page) -> None:
    acc = demo_account("40034567")
    before = await stored_readings(live_gateway, acc.customer_number)
    last = await last_reading(live_gateway, acc.customer_number)
    await page.goto(live_gateway.url + "/chat")
    await say(page, "Hello, I want to submit my meter reading", 1)
    await expect(page.locator(BOT).last).to_contain_text("customer number")
    await say(page, f"customer number {acc.customer_number}, reading {last - 10}", 2)
    await expect(page.locator(BOT).last).to_contain_text("meter number")  # step-up verification
    await say(page, acc.meter_number[-4:])
    # Rejected with the reason (and asked again).
    await expect(page.locator(BOT, has_text="lower than your last reading")).to_have_count(1, timeout=30_000)
    assert await stored_readings(live_gateway, acc.customer_number) == before
    count = await page.locator(BOT).count()
    await say(page, str(last + 40), count + 1)
    await expect(page.locator(BOT).last).to_contain_text("saved")
    assert await stored_readings(live_gateway, acc.customer_number) == [*before, last + 40]


async def test_bot_challenge_button_reaches_a_person(live_gateway: LiveGateway, page: Page) -> None:
    await page.goto(live_gateway.url + "/chat")
    await say(page, "Bist du ein Bot?", 1)
    buttons = page.locator(BOT).last.get_by_test_id("resonanz-button")
    await expect(buttons).to_have_count(2)
    # A new conversation also offers the choice between self-service and a person.
    await expect(page.locator(SYSTEM)).to_have_count(1)
    await expect(page.locator(SYSTEM).get_by_test_id("resonanz-button")).to_have_count(3)
    await buttons.first.click()  # the bot's own "talk to a person"
    # The handover notice, then the place in the queue.
    await expect(page.locator(SYSTEM)).to_have_count(3, timeout=30_000)
    await expect(page.locator(SYSTEM).nth(1)).to_contain_text("Mitarbeiter")
    await expect(page.locator(SYSTEM).last).to_contain_text("Position")
    await expect(page.get_by_test_id("resonanz-widget")).to_have_attribute("data-state", "queued")


async def test_customer_text_is_shown_as_text_never_html(live_gateway: LiveGateway, page: Page) -> None:
    payload = '<img src=x onerror="alert(1)"><script>alert(2)</script><b>fett</b>'
    await page.goto(live_gateway.url + "/chat")
    await say(page, payload, 1)
    await expect(page.locator(CUSTOMER).last.locator("p")).to_have_text(payload)
    assert await page.locator(".rz-log img").count() == 0
    assert await page.locator(".rz-log b").count() == 0
    await page.reload()  # and again when it comes back from the server's history
    await expect(page.locator(CUSTOMER).last.locator("p")).to_have_text(payload, timeout=15_000)
    assert await page.locator(".rz-log img, .rz-log script, .rz-log b").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]


async def test_an_unusually_high_reading_can_be_confirmed(live_gateway: LiveGateway, page: Page) -> None:
    """No dead end: the real engine takes the confirmation button's payload as the reading."""
    acc = demo_account("40045678")
    before = await stored_readings(live_gateway, acc.customer_number)
    high = await last_reading(live_gateway, acc.customer_number) + 90_000
    await page.goto(live_gateway.url + "/chat")
    await say(page, "Ich möchte meinen Zählerstand melden", 1)
    await say(page, acc.customer_number, 2)
    await say(page, acc.meter_number[-4:], 3)
    await say(page, str(high))
    explained = page.locator(BOT, has_text="ungewöhnlich hohe")
    await expect(explained).to_have_count(1, timeout=30_000)
    await explained.get_by_test_id("resonanz-button").filter(has_text="Ja, der Stand stimmt").click()
    await expect(page.locator(BOT).last).to_contain_text("gespeichert", timeout=30_000)
    await expect(page.locator(CUSTOMER).last.locator("p")).to_have_text("Ja, der Stand stimmt")
    assert await stored_readings(live_gateway, acc.customer_number) == [*before, high]
