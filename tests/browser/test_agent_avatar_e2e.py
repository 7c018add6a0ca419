"""An agent's picture (issue 11): uploaded and removed in the console's "My profile", shown beside
the agent's name on their messages in the web chat (alt text: the name), initials without one.
axe on both pages. Chromium, real gateway, scripted engine (the web chat module's gateway)."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image
from playwright.async_api import Browser, expect
from sqlalchemy import select

from handover.auth import create_agent, issue_api_token
from resonanz.store.models import Agent
from tests.browser.axe import assert_accessible
from tests.browser.widget_support import AGENT, DESKTOP, PHONE, Site, handover_of, open_chat, post, say, site  # noqa: F401

pytestmark = [pytest.mark.browser]

PASSWORD = "correct horse battery"


def png(size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 60, 40)).save(out, "PNG")
    return out.getvalue()


async def test_an_agents_picture_appears_beside_their_message_in_the_web_chat(site: Site, browser: Browser) -> None:
    customer = await browser.new_context(locale="de-DE", viewport=DESKTOP, bypass_csp=True)  # axe is injected
    desk = await browser.new_context(locale="de-DE", viewport=DESKTOP, bypass_csp=True)
    try:
        chat = await open_chat(customer, site.url + "/chat")
        await say(chat, "Ich möchte mit einem Menschen sprechen")
        await expect(chat.get_by_test_id("resonanz-waiting")).to_be_visible(timeout=15_000)

        email = f"mira-{uuid.uuid4().hex[:8]}@stadtwerke.example"
        await create_agent(site.db, email=email, password=PASSWORD, display_name="Mira Sommer")
        async with site.db.session() as s:  # type: ignore[attr-defined]
            agent_id = await s.scalar(select(Agent.id).where(Agent.email == email))
        mira = {"Authorization": f"Bearer {await issue_api_token(site.db, agent_id)}"}

        console = await desk.new_page()
        await console.goto(site.url + "/console")
        await console.get_by_test_id("login-email").fill(email)
        await console.get_by_test_id("login-password").fill(PASSWORD)
        await console.get_by_test_id("login-submit").click()
        await console.get_by_test_id("profile-toggle").click()
        profile = console.get_by_test_id("my-profile")
        await expect(profile).to_contain_text("Profilbild")
        await expect(console.get_by_test_id("my-initials")).to_have_text("MS")
        await assert_accessible(console)
        # Not a picture (whatever its name says): refused, said in German.
        await console.get_by_label("Profilbild hochladen").set_input_files(
            {"name": "ich.png", "mimeType": "image/png", "buffer": b"<svg onload=alert(1)>"})
        await expect(console.get_by_test_id("avatar-error")).to_have_text(
            "Das Bild muss PNG, JPEG oder WebP sein und annähernd quadratisch.")
        await console.get_by_label("Profilbild hochladen").set_input_files(
            {"name": "ich.png", "mimeType": "image/png", "buffer": png()})
        mine = console.get_by_test_id("my-avatar")
        await expect(mine).to_have_attribute("alt", "Mira Sommer")
        await expect(console.get_by_test_id("avatar-error")).to_have_text("")
        avatar_url = await mine.get_attribute("src")
        assert avatar_url.startswith("/media/")
        await assert_accessible(console)

        handover_id = await handover_of(site, chat)
        await post(site, handover_id, "accept", {}, mira)
        await post(site, handover_id, "messages", {"text": "Guten Tag, hier ist Mira."}, mira)
        message = chat.locator(AGENT, has_text="Guten Tag, hier ist Mira.")
        picture = message.get_by_test_id("resonanz-avatar")
        await expect(picture).to_have_count(1, timeout=15_000)
        await expect(picture).to_have_attribute("alt", "Mira Sommer")
        await expect(picture).to_have_attribute("src", site.url + avatar_url)  # from the gateway itself
        await expect(message.locator(".rz-author")).to_have_text("Mira Sommer")  # the name beside it
        assert await picture.evaluate("img => img.complete && img.naturalWidth") == 64  # loaded
        await assert_accessible(chat)
        await chat.set_viewport_size(PHONE)
        await chat.reload()  # from the history too, on a phone
        await expect(chat.locator(AGENT).get_by_test_id("resonanz-avatar")).to_have_attribute(
            "src", site.url + avatar_url, timeout=15_000)
        await expect(chat.locator(AGENT).get_by_test_id("resonanz-avatar")).to_be_visible()
        await chat.set_viewport_size(DESKTOP)

        # Removed: later messages, and the earlier one whose picture is gone, show the initials.
        await console.get_by_test_id("avatar-remove").click()
        await expect(console.get_by_test_id("my-initials")).to_have_text("MS")
        await post(site, handover_id, "messages", {"text": "Noch etwas?"}, mira)
        later = chat.locator(AGENT, has_text="Noch etwas?")
        await expect(later.get_by_test_id("resonanz-initials")).to_have_text("MS", timeout=15_000)
        await expect(later.get_by_test_id("resonanz-avatar")).to_have_count(0)
        await chat.reload()  # the earlier message's picture is gone from the gateway: initials, no broken image
        await expect(message.get_by_test_id("resonanz-initials")).to_have_text("MS", timeout=15_000)
        await expect(message.get_by_test_id("resonanz-avatar")).to_have_count(0)
        await assert_accessible(chat)
    finally:
        await customer.close()
        await desk.close()
