"""The web chat (Preact, connectors/webchat/static/app.mjs) and the embedded widget in a real
Chromium against the real gateway with the scripted engine: guidance on open, the customer's view
after reloads and in several tabs, the widget isolated on a hostile third-party page, basics
(times in the customer's zone, receipts, agent's name, labels in the conversation's language) and
waiting for a person. axe-core on /chat and on the widget. One gateway and host page per module."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import yaml
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect
from sqlalchemy import select

from handover.auth import create_agent, issue_api_token
from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store.models import Agent, ChannelIdentity, Conversation, Handover, WebChatSession
from tests.browser.axe import assert_accessible
from tests.conftest import make_database_url, migrated_database
from tests.support.scripted_engine import ScriptedEngine, serve_engine

pytestmark = [pytest.mark.browser]

from tests.browser.widget_support import (  # noqa: F401 - fixtures and helpers of the site
    AGENT, BOT, CUSTOMER, DESKTOP, HOSTILE, PHONE, REFERENCE_WEBCHAT, SYSTEM, Site, agent_api, context, handover_of,
    open_chat, post, say, site,
)


# --- 1. open with guidance ----------------------------------------------------------------------


@pytest.mark.parametrize(("locale", "viewport", "greeting", "task"), [
    ("de-DE", DESKTOP, "Zählerstände", "Zählerstand melden"),
    ("en-GB", PHONE, "meter readings", "Submit a meter reading"),
])
async def test_the_chat_opens_with_a_greeting_and_task_buttons(
    site: Site, browser, locale: str, viewport: dict, greeting: str, task: str,  # noqa: ANN001
) -> None:
    ctx = await browser.new_context(locale=locale, viewport=viewport, bypass_csp=True)
    try:
        page = await open_chat(ctx, site.url + "/chat")
        welcome = page.get_by_test_id("resonanz-welcome")
        await expect(welcome).to_contain_text(greeting)
        tasks = welcome.get_by_test_id("resonanz-task")
        await expect(tasks).to_have_count(5)
        await expect(tasks.first).to_have_text(task)
        box = await tasks.first.bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44  # touch targets
        size = await page.get_by_test_id("resonanz-input").evaluate("e => getComputedStyle(e).fontSize")
        assert float(size.removesuffix("px")) >= 16  # no zoom on phones
        assert await page.evaluate("document.querySelector('link[rel~=icon]').href") == site.url + "/webchat/favicon.svg"
        async with aiohttp.ClientSession() as http, http.get(site.url + "/webchat/favicon.svg") as r:
            assert r.status == 200 and r.content_type == "image/svg+xml"
        await assert_accessible(page)
    finally:
        await ctx.close()


# --- 2. the customer's view is the conversation ---------------------------------------------------


async def test_button_titles_survive_a_reload_and_used_buttons_are_disabled(site: Site, context) -> None:  # noqa: ANN001
    page = await open_chat(context, site.url + "/chat")
    await page.get_by_test_id("resonanz-task").filter(has_text="Öffnungszeiten").click()
    await expect(page.locator(BOT)).to_have_count(1, timeout=15_000)
    await expect(page.locator(CUSTOMER).locator("p")).to_have_text(["Öffnungszeiten"])
    # The offer at the start (self-service or a person) has buttons; pressing one disables them.
    offer = page.locator(SYSTEM).filter(has=page.get_by_test_id("resonanz-button")).first
    await expect(offer.get_by_test_id("resonanz-button").first).to_be_enabled()
    title = await offer.get_by_test_id("resonanz-button").first.inner_text()
    await offer.get_by_test_id("resonanz-button").first.click()
    await expect(page.locator(CUSTOMER)).to_have_count(2)
    await expect(offer.get_by_test_id("resonanz-button").first).to_be_disabled(timeout=15_000)

    await page.reload()
    await expect(page.locator(CUSTOMER).locator("p")).to_have_text(["Öffnungszeiten", title], timeout=15_000)
    assert "/opening_hours" not in await page.get_by_test_id("resonanz-log").inner_text()
    offer = page.locator(SYSTEM).filter(has=page.get_by_test_id("resonanz-button")).first
    for button in await offer.get_by_test_id("resonanz-button").all():
        await expect(button).to_be_disabled()
    await page.close()


async def test_messages_typed_in_one_tab_appear_in_the_others(site: Site, context) -> None:  # noqa: ANN001
    one = await open_chat(context, site.url + "/chat")
    two = await open_chat(context, site.url + "/chat")
    text = f"Hallo aus Tab eins {uuid.uuid4().hex[:6]}"
    await say(one, text)
    await expect(two.locator(CUSTOMER, has_text=text)).to_have_count(1, timeout=15_000)
    await expect(one.locator(CUSTOMER, has_text=text)).to_have_count(1)
    # In the conversation's order in both: the message, then the answer to it.
    for page in (one, two):
        authors = await page.locator('[data-testid="resonanz-message"]').evaluate_all(
            "ms => ms.map(m => m.dataset.author + ':' + m.querySelector('p').textContent)")
        mine = authors.index(f"customer:{text}")
        assert authors[mine + 1:] and all(not a.startswith("customer:") for a in authors[mine + 1:]), authors
    await one.close()
    await two.close()


async def test_the_labels_follow_the_conversations_language(site: Site, context) -> None:  # noqa: ANN001
    page = await open_chat(context, site.url + "/chat")  # a German browser
    await expect(page.get_by_test_id("resonanz-send")).to_have_text("Senden")
    await expect(page.get_by_test_id("resonanz-continue")).to_have_accessible_name("Auf anderem Gerät weiter")
    await say(page, "Hello, I would like to know your opening hours please")
    await expect(page.locator(BOT)).to_have_count(1, timeout=15_000)
    await expect(page.get_by_test_id("resonanz-send")).to_have_text("Send")
    await expect(page.get_by_test_id("resonanz-continue")).to_have_accessible_name("Continue on another device")
    await expect(page.locator(CUSTOMER).last.locator(".rz-author")).to_have_text("You")
    await page.reload()
    await expect(page.get_by_test_id("resonanz-welcome")).to_contain_text("Hello")
    await expect(page.get_by_test_id("resonanz-input")).to_have_attribute("placeholder", "Your message…")
    await page.close()


async def test_the_labels_switch_language_with_a_plain_bot_reply(site: Site, context) -> None:  # noqa: ANN001
    """A German conversation in a German browser; the customer goes on in English and the bot
    answers in English with no notice from the team: the chat's own labels follow that reply
    at once, in this tab and in another tab of the same session."""
    page = await open_chat(context, site.url + "/chat")
    await say(page, "Guten Tag, ich habe eine Frage zu meiner Rechnung")
    await expect(page.locator(BOT)).to_have_count(1, timeout=15_000)
    await expect(page.get_by_test_id("resonanz-send")).to_have_text("Senden")
    other = await open_chat(context, site.url + "/chat")  # the same session in a second tab
    system_before = await page.locator(SYSTEM).count()
    await say(page, "Hello, I would like to know your opening hours please")
    await expect(page.locator(BOT)).to_have_count(2, timeout=15_000)
    assert await page.locator(SYSTEM).count() == system_before  # a plain bot reply, no notice
    for tab in (page, other):
        await expect(tab.get_by_test_id("resonanz-send")).to_have_text("Send")
        await expect(tab.get_by_test_id("resonanz-input")).to_have_attribute("placeholder", "Your message…")
        await expect(tab.get_by_test_id("resonanz-continue")).to_have_accessible_name("Continue on another device")
    await expect(page.get_by_test_id("resonanz-widget")).to_have_attribute("lang", "en")
    await assert_accessible(page)
    await say(page, "Vielen Dank, dann melde ich mich morgen noch einmal bei Ihnen")  # and back again
    await expect(page.locator(BOT)).to_have_count(3, timeout=15_000)
    await expect(page.get_by_test_id("resonanz-send")).to_have_text("Senden")
    await other.close()
    await page.close()


# --- 4 + 5 + 2. waiting, the agent, and after the agent closed -------------------------------------------


async def test_waiting_then_an_agent_then_the_agent_leaves_and_it_stays_after_a_reload(site: Site, browser) -> None:  # noqa: ANN001
    ctx = await browser.new_context(locale="de-DE", viewport=PHONE, timezone_id="America/New_York", bypass_csp=True)
    try:
        page = await open_chat(ctx, site.url + "/chat")
        await say(page, "Ich möchte mit einem Menschen sprechen")
        banner = page.get_by_test_id("resonanz-waiting")
        await expect(banner).to_be_visible(timeout=15_000)
        await expect(banner).to_contain_text("Position 1")
        await expect(page.get_by_test_id("resonanz-cancel-wait")).to_be_visible()
        await expect(page.get_by_test_id("resonanz-leave-message")).to_be_visible()
        await assert_accessible(page)
        # Messages while waiting: acknowledged once.
        await say(page, "Es geht um meine Rechnung")
        await say(page, "Und um den Abschlag")
        await expect(page.locator(CUSTOMER)).to_have_count(3)
        await expect(page.get_by_test_id("resonanz-with-team")).to_have_count(1)
        await page.get_by_test_id("resonanz-log").evaluate("e => e.scrollTop = 0")
        await expect(banner).to_be_in_viewport()  # stays visible while the log scrolls

        handover_id = await handover_of(site, page)
        eva = await agent_api(site, "Eva")
        await post(site, handover_id, "accept", {}, eva)
        await post(site, handover_id, "typing", {}, eva)
        async with aiohttp.ClientSession(base_url=site.url) as http:  # only the owner's typing is shown
            async with http.post(f"/api/v1/handovers/{handover_id}/typing", headers=await agent_api(site, "Ole")) as r:
                assert r.status == 403, await r.text()
            async with http.post(f"/api/v1/handovers/{handover_id}/typing") as r:
                assert r.status == 401
        await expect(page.get_by_test_id("resonanz-typing")).to_have_text("Eva Berg schreibt …", timeout=15_000)
        reply = "Guten Tag, ich schaue mir das an."
        await post(site, handover_id, "messages", {"text": reply}, eva)
        agent = page.locator(AGENT, has_text=reply)
        await expect(agent).to_have_count(1, timeout=15_000)
        await expect(page.get_by_test_id("resonanz-typing")).to_have_count(0)  # the reply ends it
        await expect(banner).to_be_hidden()
        # Receipts: the customer's messages before the answer are read.
        await expect(page.locator(CUSTOMER).last).to_have_attribute("data-status", "read")
        # The time in the customer's zone (New York), from the server's UTC time.
        stamp = await agent.get_by_test_id("resonanz-time").get_attribute("datetime")
        local = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(ZoneInfo("America/New_York"))
        await expect(agent.get_by_test_id("resonanz-time")).to_have_text(local.strftime("%H:%M"))

        await post(site, handover_id, "close", {"resolution": "solved"}, eva)
        await expect(page.get_by_test_id("resonanz-notice")).to_contain_text("beendet", timeout=15_000)
        await page.reload()
        await expect(page.locator(AGENT, has_text=reply)).to_have_count(1, timeout=15_000)
        await expect(page.get_by_test_id("resonanz-notice")).to_contain_text("beendet")
        await expect(page.locator(CUSTOMER).first.locator("p")).to_have_text("Ich möchte mit einem Menschen sprechen")
        # Writing again starts a new conversation; the finished one stays above it.
        await say(page, "Hallo nochmal")
        await expect(page.locator(BOT)).to_have_count(1, timeout=15_000)
        await page.reload()
        await expect(page.locator(CUSTOMER).last.locator("p")).to_have_text("Hallo nochmal", timeout=15_000)
        await expect(page.locator(AGENT, has_text=reply)).to_have_count(1)
    finally:
        await ctx.close()


async def test_the_customer_sees_the_agent_typing_in_the_console(site: Site, browser) -> None:  # noqa: ANN001
    """The console's composer says that the owner types (POST .../typing, at most every 3 s); the
    customer's chat shows it until the reply arrives."""
    customer = await browser.new_context(locale="de-DE", viewport=DESKTOP)
    desk = await browser.new_context(locale="de-DE", viewport=DESKTOP)
    try:
        page = await open_chat(customer, site.url + "/chat")
        await say(page, "Ich möchte mit einem Menschen sprechen")
        await expect(page.get_by_test_id("resonanz-waiting")).to_be_visible(timeout=15_000)
        handover_id = await handover_of(site, page)
        email = f"tina-{uuid.uuid4().hex[:8]}@stadtwerke.example"
        await create_agent(site.db, email=email, password="correct horse battery", display_name="Tina Berg")
        async with site.db.session() as s:  # type: ignore[attr-defined]
            agent_id = await s.scalar(select(Agent.id).where(Agent.email == email))
        tina = {"Authorization": f"Bearer {await issue_api_token(site.db, agent_id)}"}
        await post(site, handover_id, "accept", {}, tina)

        console = await desk.new_page()
        typing_calls: list[str] = []
        console.on("request", lambda r: typing_calls.append(r.url) if r.url.endswith("/typing") else None)
        await console.goto(site.url + "/console")
        await console.get_by_test_id("login-email").fill(email)
        await console.get_by_test_id("login-password").fill("correct horse battery")
        await console.get_by_test_id("login-submit").click()
        await console.locator(f'[data-testid="mine-item"][data-id="{handover_id}"]').click(timeout=15_000)
        box = console.get_by_test_id("reply-input")
        await box.press_sequentially("Guten Tag, ich")  # one keystroke after another, well within 3 s
        await expect(page.get_by_test_id("resonanz-typing")).to_have_text("Tina Berg schreibt …", timeout=15_000)
        assert typing_calls == [f"{site.url}/api/v1/handovers/{handover_id}/typing"]  # throttled: once
        await box.press_sequentially(" schaue nach.")
        await box.press("Enter")
        await expect(page.locator(AGENT, has_text="Guten Tag, ich schaue nach.")).to_have_count(1, timeout=15_000)
        await expect(page.get_by_test_id("resonanz-typing")).to_have_count(0)  # the reply ends it
    finally:
        await customer.close()
        await desk.close()


async def test_an_update_when_the_estimate_passed_and_cancel_goes_back_to_the_bot(site: Site, context) -> None:  # noqa: ANN001
    page = await context.new_page()
    await page.clock.install()
    await page.goto(site.url + "/chat")
    await expect(page.get_by_test_id("resonanz-status")).to_have_text("", timeout=15_000)
    await say(page, "Bitte einen Menschen")
    await expect(page.get_by_test_id("resonanz-waiting")).to_be_visible(timeout=15_000)
    await expect(page.get_by_test_id("resonanz-overdue")).to_have_count(0)
    await page.clock.fast_forward("06:00")  # no estimate without agents: 5 minutes
    await expect(page.get_by_test_id("resonanz-overdue")).to_contain_text("länger als geschätzt")
    await page.get_by_test_id("resonanz-cancel-wait").click()
    await expect(page.get_by_test_id("resonanz-waiting")).to_be_hidden(timeout=15_000)
    await expect(page.locator(CUSTOMER).last.locator("p")).to_have_text("Warten abbrechen")
    await page.close()


# --- 3. the widget on a hostile third-party page ------------------------------------------------------


async def test_the_widget_is_isolated_from_a_hostile_host_page(site: Site, context) -> None:  # noqa: ANN001
    page = await context.new_page()
    await page.goto(site.host + "/")
    launcher = page.get_by_test_id("resonanz-launcher")
    await expect(launcher).to_be_visible(timeout=15_000)
    # Above the fixed cookie bar: the launcher is what a click at its centre hits.
    box = await launcher.bounding_box()
    hit = await page.evaluate("([x, y]) => document.elementFromPoint(x, y).tagName", [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
    assert hit == "RESONANZ-CHAT"
    await launcher.click()
    send = page.get_by_test_id("resonanz-send")
    await expect(page.get_by_test_id("resonanz-welcome")).to_be_visible(timeout=15_000)
    style = await send.evaluate("e => [getComputedStyle(e).textTransform, getComputedStyle(e).fontFamily]")
    assert style[0] == "none" and "serif" not in style[1].replace("sans-serif", ""), style
    await expect(page.get_by_test_id("resonanz-input")).to_be_focused()
    await assert_accessible(page, context="resonanz-chat")
    # Escape closes it and the focus is back on the launcher.
    await page.keyboard.press("Escape")
    await expect(page.get_by_test_id("resonanz-input")).to_be_hidden()
    await expect(launcher).to_be_focused()

    # Closed, and someone writes: a badge, the page's title, a preview.
    await launcher.click()
    await say(page, "Ich möchte mit einem Menschen sprechen")
    await expect(page.get_by_test_id("resonanz-waiting")).to_be_visible(timeout=15_000)
    await page.keyboard.press("Escape")
    handover_id = await handover_of(site, page)
    kim = await agent_api(site, "Kim")
    await post(site, handover_id, "accept", {}, kim)
    await post(site, handover_id, "messages", {"text": "Hallo, hier ist Kim."}, kim)
    await expect(page.get_by_test_id("resonanz-badge")).to_have_text("2", timeout=15_000)  # "now talking to" + reply
    await expect(page).to_have_title("(2) Host shop")
    await expect(page.get_by_test_id("resonanz-preview")).to_have_text("Hallo, hier ist Kim.")
    await page.get_by_test_id("resonanz-preview").click()
    await expect(page.get_by_test_id("resonanz-badge")).to_have_count(0)
    await expect(page).to_have_title("Host shop")
    await expect(page.locator(AGENT).last.locator(".rz-author")).to_have_text("Kim Berg")
    # Continue on another device from the widget on another origin (CORS with the session token).
    await page.get_by_test_id("resonanz-continue").click()
    await expect(page.get_by_test_id("resonanz-continue-panel")).to_be_visible()
    link = await page.get_by_test_id("resonanz-continue-browser").get_attribute("href")
    assert link.startswith(site.url + "/chat?continue=rz"), link

    # On a phone the open widget fills the screen.
    await page.set_viewport_size(PHONE)
    panel = await page.locator(".rz-panel").bounding_box()
    assert (panel["x"], panel["y"], panel["width"], panel["height"]) == (0, 0, PHONE["width"], PHONE["height"])
    small = await page.locator("resonanz-chat").evaluate(
        "h => [...h.shadowRoot.querySelectorAll('button, input, .rz-attach')].filter(e => e.offsetParent)"
        ".map(e => [e.className || e.tagName, e.getBoundingClientRect()]).filter(([, r]) => r.width < 44 || r.height < 44)"
        ".map(([n, r]) => `${n} ${r.width}x${r.height}`)")
    assert small == []  # every touch target at least 44 px
    await assert_accessible(page, context="resonanz-chat")
    await page.close()


# --- 4. attachments ------------------------------------------------------------------------------------

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


async def test_pictures_and_pdfs_are_sent_checked_by_their_content(site: Site, context) -> None:  # noqa: ANN001
    page = await open_chat(context, site.url + "/chat")
    other = await open_chat(context, site.url + "/chat")
    file = page.get_by_test_id("resonanz-file")
    await file.set_input_files(files=[{"name": "zaehler.png", "mimeType": "image/png", "buffer": PNG}])
    await expect(page.get_by_test_id("resonanz-attachment")).to_have_text("zaehler.png", timeout=15_000)
    await expect(other.get_by_test_id("resonanz-attachment")).to_have_text("zaehler.png", timeout=15_000)
    await file.set_input_files(files=[{"name": "rechnung.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n%%EOF\n"}])
    await expect(page.get_by_test_id("resonanz-attachment")).to_have_count(2, timeout=15_000)
    # Named and declared a PDF, but a web page: refused by its content.
    await file.set_input_files(files=[{"name": "rechnung2.pdf", "mimeType": "application/pdf",
                                       "buffer": b"<html><script>alert(1)</script></html>"}])
    await expect(page.get_by_test_id("resonanz-error")).to_contain_text("PDF", timeout=15_000)
    # Larger than the limit (5 MB): refused with the limit.
    await file.set_input_files(files=[{"name": "gross.pdf", "mimeType": "application/pdf",
                                       "buffer": b"%PDF-1.4\n" + b"0" * 5_000_000}])
    await expect(page.get_by_test_id("resonanz-error").last).to_contain_text("5 MB")
    await page.reload()
    await expect(page.get_by_test_id("resonanz-attachment")).to_have_count(2, timeout=15_000)
    async with site.db.session() as s:  # type: ignore[attr-defined]
        from resonanz.store.models import Message
        kinds = [(a["mime_type"], a["name"]) for m in (await s.scalars(select(Message).where(
            Message.attachments != []))).all() for a in m.attachments]
    assert ("image/png", "zaehler.png") in kinds and ("application/pdf", "rechnung.pdf") in kinds
    assert not any(name in ("rechnung2.pdf", "gross.pdf") for _, name in kinds)
    await assert_accessible(page)
    await page.close()
    await other.close()


# --- 5b. waiting: leave a message for a callback or an e-mail ---------------------------------------


async def test_a_waiting_customer_leaves_a_message_for_a_callback_and_the_agent_sees_it(site: Site, browser) -> None:  # noqa: ANN001
    ctx = await browser.new_context(locale="de-DE", viewport=PHONE, bypass_csp=True)
    try:
        page = await open_chat(ctx, site.url + "/chat")
        await say(page, "Ich möchte mit einem Menschen sprechen")
        await expect(page.get_by_test_id("resonanz-waiting")).to_be_visible(timeout=15_000)
        await page.get_by_test_id("resonanz-leave-message").click()
        form = page.get_by_test_id("resonanz-callback")
        await expect(form).to_be_visible()
        await expect(page.get_by_test_id("resonanz-callback-phone")).to_be_focused()
        await assert_accessible(page)
        # The server checks the contact: refused, said in the form, nothing sent.
        message = "<b>Bitte</b> morgen ab 9 Uhr anrufen, es geht um die Rechnung."
        await page.get_by_test_id("resonanz-callback-contact").fill("keine Nummer")
        await page.get_by_test_id("resonanz-callback-message").fill(message)
        await page.get_by_test_id("resonanz-callback-send").click()
        await expect(page.get_by_test_id("resonanz-callback-problem")).to_contain_text("gültige Telefonnummer", timeout=15_000)
        await expect(page.get_by_test_id("resonanz-callback-contact")).to_have_attribute("aria-invalid", "true")
        await expect(page.get_by_test_id("resonanz-waiting")).to_be_visible()
        await page.get_by_test_id("resonanz-callback-contact").fill("+49 30 1234567")
        await page.get_by_test_id("resonanz-callback-send").click()
        # Left: out of the queue, told what happens next, the message in the log as text.
        await expect(page.get_by_test_id("resonanz-waiting")).to_be_hidden(timeout=15_000)
        await expect(form).to_have_count(0)
        await expect(page.locator(SYSTEM).last).to_contain_text("Wir rufen Sie unter +49 30 1234567 zurück")
        await expect(page.locator(CUSTOMER).last.locator("p")).to_have_text(message)
        await expect(page.get_by_test_id("resonanz-input")).to_be_focused()
        handover_id = await handover_of(site, page)
        async with site.db.session() as s:  # type: ignore[attr-defined]
            h = await s.get(Handover, handover_id)
            assert (h.status, h.resolution, h.context["callback"]["contact"]) == ("cancelled", "callback_requested", "+49 30 1234567")
        await page.reload()  # it stays after a reload
        await expect(page.locator(CUSTOMER).last.locator("p")).to_have_text(message, timeout=15_000)
        await expect(page.get_by_test_id("resonanz-waiting")).to_have_count(0)
    finally:
        await ctx.close()

    # The agents see it in the console: in the list with the contact, in the detail with the message.
    email = f"lea-{uuid.uuid4().hex[:8]}@stadtwerke.example"
    await create_agent(site.db, email=email, password="correct horse battery", display_name="Lea Berg")
    ctx = await browser.new_context(locale="de-DE", viewport=DESKTOP)
    try:
        agent = await ctx.new_page()
        await agent.goto(site.url + "/console")
        await agent.get_by_test_id("login-email").fill(email)
        await agent.get_by_test_id("login-password").fill("correct horse battery")
        await agent.get_by_test_id("login-submit").click()
        item = agent.locator(f'[data-testid="closed-item"][data-id="{handover_id}"]')
        await expect(item.get_by_test_id("list-callback")).to_have_text("Rückruf an: +49 30 1234567", timeout=15_000)
        await expect(item).to_contain_text("Rückruf/E-Mail erbeten")
        await item.locator("button").click()
        detail = agent.get_by_test_id("context-callback")
        await expect(detail).to_contain_text("Rückruf an: +49 30 1234567")
        await expect(detail.locator(".callback-message")).to_have_text(message)  # text, never HTML
        await expect(agent.get_by_test_id("conv-closed")).to_contain_text("Rückruf/E-Mail erbeten")
        await assert_accessible(agent)
    finally:
        await ctx.close()


async def test_an_e_mail_request_in_english_in_the_widget(site: Site, browser) -> None:  # noqa: ANN001
    ctx = await browser.new_context(locale="en-GB", viewport=DESKTOP, bypass_csp=True)
    try:
        page = await ctx.new_page()
        await page.goto(site.host + "/")
        await page.get_by_test_id("resonanz-launcher").click()
        await expect(page.get_by_test_id("resonanz-welcome")).to_be_visible(timeout=15_000)
        await say(page, "I would like to talk to a person please")
        await expect(page.get_by_test_id("resonanz-waiting")).to_be_visible(timeout=15_000)
        await page.get_by_test_id("resonanz-leave-message").click()
        await page.get_by_text("E-mail", exact=True).click()
        await expect(page.get_by_label("Your e-mail address")).to_be_visible()
        await page.get_by_test_id("resonanz-callback-send").click()  # no message yet
        await expect(page.get_by_test_id("resonanz-callback-problem")).to_have_text("Please write your message.")
        await page.get_by_test_id("resonanz-callback-message").fill("Please send me my last bill.")
        await page.get_by_test_id("resonanz-callback-contact").fill("kim@")
        await page.get_by_test_id("resonanz-callback-send").click()
        await expect(page.get_by_test_id("resonanz-callback-problem")).to_contain_text("valid e-mail address", timeout=15_000)
        await assert_accessible(page, context="resonanz-chat")
        await page.get_by_test_id("resonanz-callback-contact").fill("kim@example.org")
        await page.get_by_test_id("resonanz-callback-send").click()
        await expect(page.locator(SYSTEM).last).to_contain_text("We will reply by e-mail to kim@example.org", timeout=15_000)
        await expect(page.get_by_test_id("resonanz-waiting")).to_have_count(0)
    finally:
        await ctx.close()
