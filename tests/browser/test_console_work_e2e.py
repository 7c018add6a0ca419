"""The agent console for daily work (issue 11), in Chromium at 1280×800 and 390×844, with axe.

One gateway (SQLite, the scripted engine) for the module; customers write through the REST
channel. Proven here: the clear workflow (reply takes ownership and tells the customer, readable
labels, the agent's time zone, no ids or JSON, closed conversations without controls, earlier
conversations in place, customer notes), work at volume (counts, paging, filters, sorting,
search, real offers only), the composer (Enter / Shift+Enter, canned responses, shortcuts, Send
visible at 1024 px) and notifications (title badge, sound, desktop; each switchable).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from handover.auth import create_agent, issue_api_token
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import (Agent, ChannelIdentity, Conversation, Customer, Handover, Message, Queue, new_id,
                                   utcnow)
from tests.browser.axe import assert_accessible
from tests.conftest import make_database_url, migrated_database
from tests.support.scripted_engine import ScriptedEngine, serve_engine

pytestmark = pytest.mark.browser

from tests.browser.console_support import (  # noqa: F401 - the module's gateway fixture and helpers
    HEX_ID, NOTIFICATIONS, PASSWORD, Gateway, gateway, log_in, seed_waiting,
)


async def test_clear_workflow_composer_and_notifications(gateway: Gateway, browser: Browser) -> None:
    admin = await gateway.agent("Anna Admin", role="admin")
    await gateway.call(admin, "POST", "/api/v1/canned-responses",
                       {"shortcut": "gruss", "language": "de", "title": "Begrüßung", "text": "Guten Tag, wie kann ich helfen?"})
    email = await gateway.agent("Petra Schmidt")
    phone = "+491511" + str(uuid.uuid4().int)[:7]
    # An earlier conversation of this customer, closed by an agent.
    await gateway.customer(phone, "Meine Abschlagszahlung ist zu hoch, Mensch bitte")
    [old] = (await gateway.call(email, "GET", "/api/v1/handovers?view=queue"))["handovers"]
    await gateway.call(email, "POST", f"/api/v1/handovers/{old['id']}/accept")
    await gateway.call(email, "POST", f"/api/v1/handovers/{old['id']}/close", {"resolution": "no_response", "return_to_bot": False})
    await gateway.customer(phone, "Mein Zähler zeigt seltsame Werte an")
    await gateway.customer(phone, "Ich will bitte einen Menschen sprechen")

    ctx = await browser.new_context(locale="de-DE", bypass_csp=True,  # axe is injected as a script
                                    timezone_id="America/New_York", viewport={"width": 1280, "height": 800})
    await ctx.add_init_script(NOTIFICATIONS)
    try:
        page = await ctx.new_page()
        await log_in(page, gateway, email)
        item = page.get_by_test_id("queue-item").first
        # Named by the channel address, previewed by the customer's own request, reason as a label.
        await expect(item).to_contain_text(phone)
        await expect(item.get_by_test_id("preview")).to_have_text("Ich will bitte einen Menschen sprechen")
        await expect(item).to_contain_text("Kunde möchte eine Person")
        await expect(page.get_by_test_id("count-queue")).to_have_text("1")
        await item.click()

        # Not accepted: the composer says that sending takes it; the context has no ids or JSON.
        await expect(page.get_by_test_id("conv-status")).to_have_attribute("data-status", "waiting")
        await expect(page.get_by_test_id("conv-status")).to_have_text("wartet")
        await expect(page.get_by_test_id("reply-hint")).to_be_visible()
        await expect(page.get_by_test_id("context-reason")).to_have_text("Kunde möchte eine Person")
        context_text = await page.locator("#context").inner_text()
        assert not HEX_ID.search(context_text) and "{" not in context_text, context_text
        assert not HEX_ID.search(await page.locator(".lists").inner_text())

        # Times in the agent's time zone (New York), not UTC.
        first = page.get_by_test_id("transcript-message").first
        stamp = await first.get_by_test_id("message-time").get_attribute("datetime")
        local = datetime.fromisoformat(stamp).astimezone(ZoneInfo("America/New_York")).strftime("%H:%M")
        await expect(first.get_by_test_id("message-time")).to_have_text(local)

        # The earlier conversation opens in place, with its outcome as words.
        history = page.get_by_test_id("history-item").first
        await expect(history).to_contain_text("Kunde antwortet nicht")
        await history.get_by_test_id("history-toggle").click()
        await expect(history.get_by_test_id("history-message").filter(has_text="Abschlagszahlung")).to_be_visible()

        # Canned responses: "/" opens them, Enter picks one.
        box = page.get_by_test_id("reply-input")
        await box.click()
        await box.type("/gr")
        await expect(page.get_by_test_id("canned-option")).to_have_text("/gruss Begrüßung")
        await box.press("Enter")
        await expect(box).to_have_value("Guten Tag, wie kann ich helfen?")
        await box.fill("")

        # Enter sends, Shift+Enter breaks the line; sending takes ownership and tells the customer.
        await box.type("Zeile eins")
        await box.press("Shift+Enter")
        await box.type("Zeile zwei")
        await box.press("Enter")
        await expect(page.get_by_test_id("conv-status")).to_have_attribute("data-status", "assigned", timeout=10_000)
        await expect(page.locator('[data-testid="transcript-message"][data-author="agent"] p')).to_have_text("Zeile eins\nZeile zwei")
        out = [m["text"] for m in await gateway.outbound(phone)]
        assert out[-2:] == ["Sie sprechen jetzt mit Petra aus unserem Team.", "Zeile eins\nZeile zwei"], out

        # Send stays in view down to 1024 px.
        await page.set_viewport_size({"width": 1024, "height": 768})
        await expect(page.get_by_test_id("reply-send")).to_be_in_viewport()
        await page.set_viewport_size({"width": 1280, "height": 800})

        # A customer message: title badge, sound, desktop notification; sound can be switched off.
        await gateway.customer(phone, "Hallo, sind Sie noch da?")
        await expect(page).to_have_title(re.compile(r"^\(1\) "), timeout=10_000)
        assert await page.evaluate("window.resonanzConsole.sounds") == 1
        assert await page.evaluate("window.__desktop") == []  # desktop notices are off by default
        await page.get_by_test_id("notify-sound").uncheck()
        await page.get_by_test_id("notify-desktop").check()
        await gateway.customer(phone, "Hallo?")
        await expect(page).to_have_title(re.compile(r"^\(2\) "), timeout=10_000)
        assert await page.evaluate("window.resonanzConsole.sounds") == 1
        assert await page.evaluate("window.__desktop") == [[f"Neue Nachricht · {phone}", "Hallo?"]]

        # Alt+N goes to the note field.
        await page.keyboard.press("Alt+n")
        await expect(page.get_by_test_id("note-input")).to_be_focused()

        # Notes about the customer are kept.
        await page.get_by_test_id("customer-notes").fill("Ruft lieber abends an")
        await page.get_by_test_id("customer-notes-save").click()
        await expect(page.get_by_test_id("customer-notes-state")).to_have_text("gespeichert")

        await assert_accessible(page)

        # Alt+C opens closing with readable outcomes; a closed conversation has no controls left.
        await page.get_by_test_id("note-input").focus()
        await page.keyboard.press("Alt+c")
        await expect(page.get_by_test_id("close-resolution")).to_be_focused()
        await expect(page.get_by_test_id("close-resolution").locator("option")).to_have_text(
            ["Gelöst", "Rückruf vereinbart", "Weitergeleitet", "Kunde antwortet nicht", "Sonstiges"])
        await page.get_by_test_id("close-resolution").select_option("solved")
        await page.get_by_test_id("close-submit").click()
        await expect(page.get_by_test_id("conv-closed")).to_have_text("Gespräch abgeschlossen: Gelöst")
        for control in ("reply-input", "reply-send", "close-open", "transfer-open", "note-input", "accept"):
            await expect(page.get_by_test_id(control)).to_have_count(0)
        await page.reload()
        await page.get_by_test_id("closed-item").first.click()
        await expect(page.get_by_test_id("customer-notes")).to_have_value("Ruft lieber abends an")
    finally:
        await ctx.close()


async def test_work_at_volume_real_offers_paging_filters_search_and_phone(gateway: Gateway, browser: Browser) -> None:
    email = await gateway.agent("Olga Viel", capacity=2)
    tag = str(uuid.uuid4().int)[:6]
    senders = [f"+4917{tag}{i:03d}" for i in range(100)]
    await seed_waiting(gateway, senders[1:])  # 99 waiting, stored at once (a minute apart)
    await gateway.customer(senders[0], "Zählernummer 4711-XY ist falsch, Mensch bitte")  # one through the channel

    ctx = await browser.new_context(locale="de-DE", bypass_csp=True,  # axe is injected as a script
                                    viewport={"width": 1280, "height": 800})
    try:
        page = await ctx.new_page()
        await log_in(page, gateway, email)
        queue = (await gateway.call(email, "GET", "/api/v1/handovers?view=queue"))["handovers"]
        await expect(page.get_by_test_id("count-queue")).to_have_text(str(len(queue)))
        assert len(queue) >= 100
        await expect(page.get_by_test_id("queue-item")).to_have_count(25)
        await page.get_by_test_id("more-queue").click()
        await expect(page.get_by_test_id("queue-item")).to_have_count(50)

        # Going online: only what the agent can take is offered to them.
        await page.get_by_test_id("status-select").select_option("online")
        await expect(page.get_by_test_id("offered-badge")).to_have_count(2, timeout=10_000)
        # A notice (sound, title) for each real offer, not for the hundred waiting.
        notices = await page.evaluate("window.resonanzConsole.notifications.map(n => n.kind)")
        assert notices == ["offer", "offer"], notices
        await expect(page).to_have_title(re.compile(r"^\(2\) "))

        # Newest activity first (the default), after the offers.
        queue = (await gateway.call(email, "GET", "/api/v1/handovers?view=queue"))["handovers"]
        latest = {h["id"]: (h["last_message"] or {}).get("timestamp") or h["created_at"] for h in queue}
        shown = [latest[i] for i in await page.get_by_test_id("queue-item").evaluate_all("els => els.map(e => e.dataset.id)")][2:]
        assert shown == sorted(shown, reverse=True)

        # Offers first; then, sorted by waiting time, the longest waiting first.
        offered = page.get_by_test_id("queue-item").filter(has=page.get_by_test_id("offered-badge"))
        await expect(page.get_by_test_id("queue-item").nth(1)).to_have_attribute("data-id", await offered.nth(1).get_attribute("data-id"))
        await page.get_by_test_id("sort").select_option("wait")
        queue = (await gateway.call(email, "GET", "/api/v1/handovers?view=queue"))["handovers"]
        waited = {h["id"]: h["waiting_seconds"] for h in queue}
        longest = max(s for h, s in waited.items() if not next(x for x in queue if x["id"] == h)["offered_to_me"])
        await expect(page.get_by_test_id("queue-item").nth(2)).to_have_attribute("data-id", re.compile("|".join(
            h for h, s in waited.items() if s >= longest - 1)))
        shown = [waited[i] for i in await page.get_by_test_id("queue-item").evaluate_all("els => els.map(e => e.dataset.id)")][2:]
        assert shown == sorted(shown, reverse=True)

        # Filters narrow the list (and the count) by language.
        languages = sorted({h["customer"]["language"] for h in queue if h["customer"]["language"]})
        await page.get_by_test_id("filter-language").select_option(languages[0])
        expected = sum(h["customer"]["language"] == languages[0] for h in queue)
        await expect(page.get_by_test_id("count-queue")).to_have_text(str(expected))
        await page.get_by_test_id("filter-language").select_option("")

        # Search over conversations and customers.
        await page.get_by_test_id("search-input").fill("4711-xy")
        await page.get_by_test_id("search-submit").click()
        await expect(page.get_by_test_id("search-item")).to_have_count(1)
        await expect(page.get_by_test_id("search-item")).to_contain_text(senders[0])

        # Keyboard: Alt+J opens the next conversation, Alt+A accepts it.
        await page.get_by_test_id("search-clear").click()
        await page.keyboard.press("Alt+j")
        await expect(page.get_by_test_id("conv-status")).to_be_visible()
        await page.keyboard.press("Alt+a")
        await expect(page.get_by_test_id("conv-status")).to_have_attribute("data-status", "assigned", timeout=10_000)
        await expect(page.get_by_test_id("count-mine")).to_have_text("1")
        await assert_accessible(page)

        # Phone width: the open conversation replaces the list; Back returns to it.
        await page.set_viewport_size({"width": 390, "height": 844})
        await expect(page.locator(".lists")).to_be_hidden()
        await expect(page.get_by_test_id("reply-send")).to_be_visible()
        await assert_accessible(page)
        await page.get_by_test_id("back").click()
        await expect(page.get_by_test_id("queue-item").first).to_be_visible()
        await assert_accessible(page)
    finally:
        await ctx.close()


async def test_admins_manage_canned_responses_and_english_agents_see_english(gateway: Gateway, browser: Browser) -> None:
    admin = await gateway.agent("Alex Admin", role="admin")
    ctx = await browser.new_context(locale="en-GB", bypass_csp=True, viewport={"width": 1280, "height": 800})
    try:
        page = await ctx.new_page()
        await log_in(page, gateway, admin)
        await expect(page.locator("#h-queue")).to_contain_text("Queue")
        assert await page.evaluate("document.documentElement.lang") == "en"
        await page.get_by_test_id("admin-toggle").click()
        shortcut = "hello" + uuid.uuid4().hex[:4]
        for language, text in (("de", "Guten Tag!"), ("en", "Good morning!")):
            await page.get_by_test_id("canned-shortcut").fill(shortcut)
            await page.get_by_test_id("canned-language").select_option(language)
            await page.get_by_test_id("canned-title").fill("Greeting " + language)
            await page.get_by_test_id("canned-text").fill(text)
            await page.get_by_test_id("canned-create").click()
            await expect(page.get_by_test_id("canned-row").filter(has_text=text)).to_contain_text(f"/{shortcut}")
        await page.get_by_test_id("canned-shortcut").fill(shortcut)  # the same shortcut and language again
        await page.get_by_test_id("canned-title").fill("again")
        await page.get_by_test_id("canned-text").fill("again")
        await page.get_by_test_id("canned-create").click()
        await expect(page.get_by_test_id("admin-error")).to_contain_text("exists")
        await assert_accessible(page)
        await page.get_by_test_id("canned-row").filter(has_text="Guten Tag!").get_by_test_id("canned-delete").click()
        await expect(page.get_by_test_id("canned-row").filter(has_text="Guten Tag!")).to_have_count(0)
        listed = (await gateway.call(admin, "GET", "/api/v1/canned-responses"))["canned_responses"]
        assert [(c["language"], c["text"]) for c in listed if c["shortcut"] == shortcut] == [("en", "Good morning!")]
    finally:
        await ctx.close()


async def test_a_customer_message_right_after_taking_a_conversation_is_notified(gateway: Gateway, browser: Browser) -> None:
    """The list of the agent's conversations is refreshed a moment after the live event that made a
    conversation theirs; a customer message in between is still notified (CI once missed it).
    Held here for certain: the console's "mine" list answers are kept back until the end."""
    email = await gateway.agent("Jonas Berg")
    phone = "+491512" + str(uuid.uuid4().int)[:7]
    await gateway.customer(phone, "Ich will bitte einen Menschen sprechen")
    ctx = await browser.new_context(locale="de-DE")
    try:
        page = await ctx.new_page()
        await log_in(page, gateway, email)
        await expect(page.get_by_test_id("count-queue")).not_to_have_text("0")
        held: list = []
        asked = asyncio.Event()

        async def hold(route) -> None:  # noqa: ANN001 - Playwright's Route
            if asked.is_set() and not held:
                await route.continue_()
                return
            held.append(route)
            asked.set()

        await page.route(re.compile(r"/api/v1/handovers\?view=mine"), hold)
        [mine] = [h for h in (await gateway.call(email, "GET", "/api/v1/handovers?view=queue"))["handovers"]
                  if h["customer"] and phone in (h["customer"].get("display") or "")]
        await gateway.call(email, "POST", f"/api/v1/handovers/{mine['id']}/accept")
        await asyncio.wait_for(asked.wait(), 10)  # the accept's event made the console ask for its list
        await gateway.customer(phone, "Hallo, sind Sie noch da?")
        await expect(page).to_have_title(re.compile(r"^\(1\) "), timeout=10_000)
        # Released, the list catches up and shows the conversation as the agent's.
        for route in held[:]:
            held.remove(route)
            await route.continue_()
        await expect(page.get_by_test_id("count-mine")).to_have_text("1")
    finally:
        await ctx.close()
