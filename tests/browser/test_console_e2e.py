"""The agent console in a real browser, with a customer in the web chat, against the real engine:
an agent logs in, sees the queued conversation with its reason, transcript, intents and slots,
accepts it and replies; the customer gets the reply; the agent closes; the customer answers the
survey; the rating shows in the console. Customer text with script payloads stays text."""

from __future__ import annotations

import uuid

import pytest
from playwright.async_api import Browser, expect

from bot.reference.demo_data import demo_account
from handover.auth import create_agent
from tests.conftest import LiveGateway

pytestmark = [pytest.mark.engine, pytest.mark.browser]

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


async def test_agent_takes_a_handover_from_queue_to_rating(live_gateway: LiveGateway, browser: Browser) -> None:
    email = f"petra-{uuid.uuid4().hex[:6]}@stadtwerke.example"
    await create_agent(live_gateway.db, email=email, password="geheim-geheim-42", display_name="Petra Schmidt")
    acc = demo_account("40012345")

    customer_ctx = await browser.new_context(locale="de-DE")
    agent_ctx = await browser.new_context(locale="de-DE")
    dialogs: list[str] = []
    try:
        customer = await customer_ctx.new_page()
        agent = await agent_ctx.new_page()
        for page in (customer, agent):
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        async def say(text: str) -> None:
            await customer.get_by_test_id("resonanz-input").fill(text)
            await customer.get_by_test_id("resonanz-send").click()

        bot = customer.locator('[data-testid="resonanz-message"][data-author="bot"]')

        async def say_and_wait(text: str) -> None:
            before = await bot.count()
            await say(text)
            await expect(bot.nth(before)).to_be_visible(timeout=30_000)  # the bot answered

        await customer.goto(live_gateway.url + "/chat")
        await say_and_wait("Ich möchte meinen Zählerstand melden")
        await say_and_wait(acc.customer_number)
        await say_and_wait(XSS)
        await say("Ich möchte bitte mit einem Mitarbeiter sprechen")
        await expect(customer.get_by_test_id("resonanz-widget")).to_have_attribute("data-state", "queued", timeout=30_000)

        # The agent logs in and sees the conversation in the queue, with its context.
        await agent.goto(live_gateway.url + "/console")
        await agent.get_by_test_id("login-email").fill(email)
        await agent.get_by_test_id("login-password").fill("geheim-geheim-42")
        await agent.get_by_test_id("login-submit").click()
        item = agent.get_by_test_id("queue-item").filter(has_text="Kunde möchte eine Person").last
        await expect(item).to_be_visible(timeout=15_000)
        await item.click()
        await expect(agent.get_by_test_id("context-reason")).to_contain_text("Kunde möchte eine Person")
        await expect(agent.get_by_test_id("context-slots")).to_contain_text(acc.customer_number)
        await expect(agent.get_by_test_id("context-summary")).to_contain_text("Zählerstand")
        await expect(agent.get_by_test_id("context-intents").first).to_contain_text("Zählerstand melden")
        xss_bubble = agent.locator('[data-testid="transcript-message"][data-author="customer"] p', has_text="<script>")
        await expect(xss_bubble).to_have_text(XSS)
        assert await agent.locator(".transcript img").count() == 0

        await agent.get_by_test_id("accept").click()
        await expect(agent.get_by_test_id("conv-status")).to_have_attribute("data-status", "assigned", timeout=15_000)
        await agent.get_by_test_id("reply-input").fill("Guten Tag, hier ist Petra. Wie kann ich helfen?")
        await agent.get_by_test_id("reply-send").click()
        agent_bubble = customer.locator('[data-testid="resonanz-message"][data-author="agent"]')
        await expect(agent_bubble).to_contain_text("hier ist Petra", timeout=15_000)

        # The customer answers; the agent sees it live; the agent closes.
        await say("Danke, das war alles.")
        await expect(agent.locator('[data-testid="transcript-message"][data-author="customer"]').last).to_contain_text("das war alles", timeout=15_000)
        await agent.get_by_test_id("close-open").click()
        await agent.get_by_test_id("close-resolution").select_option("solved")
        await agent.get_by_test_id("close-submit").click()

        # Survey in the web chat: native buttons; the answer shows in the console.
        survey = customer.locator('[data-testid="resonanz-message"][data-author="system"]').filter(has_text="zufrieden")
        await expect(survey).to_have_count(1, timeout=15_000)
        await survey.get_by_test_id("resonanz-button").filter(has_text="4").click()
        await expect(agent.get_by_test_id("rating")).to_have_text("★ 4 / 5", timeout=15_000)
        assert dialogs == []
    finally:
        await customer_ctx.close()
        await agent_ctx.close()
