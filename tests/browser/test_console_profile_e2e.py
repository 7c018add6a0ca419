"""The customer profile in the console (issue 11): each channel identity with its address and
whether and how it was verified, in the context panel and on the customers page, in German and
English, with axe. Chromium at 1280×800 and 390×844."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select

from resonanz.store.models import ChannelIdentity, new_id, utcnow
from tests.browser.axe import assert_accessible
from tests.browser.console_support import HEX_ID, Gateway, gateway, log_in  # noqa: F401 - the module's gateway

pytestmark = pytest.mark.browser


async def customer_with_identities(gw: Gateway) -> tuple[str, str, str, str]:
    """A REST customer asking for a person, who also wrote on Telegram (continued with a code; shown
    by the user name, "@..."), from the shop's site signed in, and once anonymously in a browser."""
    phone = "+491512" + str(uuid.uuid4().int)[:7]
    chat, user = str(uuid.uuid4().int)[:9], "kunde-" + uuid.uuid4().hex[:6]
    handle = "erika_" + uuid.uuid4().hex[:6]  # the Telegram user name (connectors/telegram.py keeps it)
    await gw.customer(phone, "Ich will bitte einen Menschen sprechen")
    async with gw.db.session() as s:
        customer_id = await s.scalar(select(ChannelIdentity.customer_id).where(ChannelIdentity.external_id == phone))
        at = utcnow() - timedelta(minutes=5)
        s.add_all([
            ChannelIdentity(customer_id=customer_id, channel="telegram", external_id=chat,
                            address={"channel": "telegram", "recipient": chat, "extra": {"username": handle}},
                            verified_by="continue_code", verified_at=at),
            ChannelIdentity(customer_id=customer_id, channel="webchat", external_id=new_id(), customer_key=f"host:{user}",
                            address={"channel": "webchat", "recipient": "x", "extra": {}},
                            verified_by="signed_identity", verified_at=at),
            ChannelIdentity(customer_id=customer_id, channel="webchat", external_id=new_id(),
                            address={"channel": "webchat", "recipient": "y", "extra": {}}),
        ])
    return customer_id, phone, "@" + handle, user


async def test_the_profile_shows_each_identity_and_whether_it_is_verified(gateway: Gateway, browser: Browser) -> None:
    customer_id, phone, telegram, user = await customer_with_identities(gateway)
    email = await gateway.agent("Vera Profil")
    ctx = await browser.new_context(locale="de-DE", bypass_csp=True,  # axe is injected as a script
                                    viewport={"width": 1280, "height": 800})
    try:
        page = await ctx.new_page()
        await log_in(page, gateway, email)
        await page.get_by_test_id("queue-item").filter(has_text=phone).click()
        identities = page.get_by_test_id("profile-identity")
        await expect(identities).to_have_count(4)
        await expect(identities.nth(0)).to_have_text(f"REST · {phone} · nicht verifiziert")
        await expect(identities.nth(1)).to_contain_text(f"Telegram · {telegram} · verifiziert (Weiterführungscode, ")
        await expect(identities.nth(2)).to_contain_text(f"Web-Chat · {user} · verifiziert (signierte Anmeldung der Website, ")
        await expect(identities.nth(3)).to_have_text("Web-Chat · Browser-Sitzung · nicht verifiziert")
        assert [await i.get_attribute("data-verified") for i in await identities.all()] == [
            "", "continue_code", "signed_identity", ""]
        context_text = await page.locator("#context").inner_text()
        assert not HEX_ID.search(context_text), context_text  # the session ids stay hidden
        await assert_accessible(page)
        await page.set_viewport_size({"width": 390, "height": 844})
        await expect(identities.nth(1)).to_be_visible()
    finally:
        await ctx.close()

    # The customers page, for an English-speaking admin: the same identities, in English.
    admin = await gateway.agent("Alan Admin", role="admin")
    ctx = await browser.new_context(locale="en-GB", bypass_csp=True, viewport={"width": 1280, "height": 800})
    try:
        page = await ctx.new_page()
        await log_in(page, gateway, admin)
        await page.goto(f"{gateway.url}/console/customers?customer={customer_id}")
        rows = page.get_by_test_id("customers-identity")
        await expect(rows).to_have_count(4)
        await expect(rows.nth(0)).to_contain_text(f"REST · {phone} · not verified")
        await expect(rows.nth(1)).to_contain_text(f"Telegram · {telegram} · verified (continue code, ")
        await expect(rows.nth(2)).to_contain_text(f"Web chat · {user} · verified (signed sign-in on the website, ")
        await expect(rows.nth(3)).to_contain_text("Web chat · browser session · not verified")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Merge and split customers")
        assert await page.evaluate("document.documentElement.lang") == "en"
        await expect(rows.nth(1).get_by_role("button", name=re.compile("Split off channel Telegram"))).to_be_enabled()
        await assert_accessible(page)
    finally:
        await ctx.close()
