"""Screenshots of the web chat, the embedded widget and the agent console, for the README.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts its own gateway (a temporary SQLite database, the REST and web chat channels) with a small
stand-in engine that answers like the reference bot, so the pictures do not need a trained model;
then drives Debian's Chromium with Playwright: a customer in /chat (phone size), the widget on a
host page served from another port, and an agent working in /console (1280×800). Writes
chat.png, widget.png, console.png and console-phone.png.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.engine import TURN_PATH  # noqa: E402
from handover.auth import create_agent  # noqa: E402
from resonanz.settings import Settings  # noqa: E402
from resonanz.store.migrate import upgrade  # noqa: E402
from resonanz.store import Database  # noqa: E402

PASSWORD = "screenshots-only-42"
ANSWERS = [  # (words in the customer's text, intent, the bot's answer)
    (("zähler", "meter"), "submit_meter_reading", "Gern! Wie lautet Ihre Kundennummer? Sie steht oben rechts auf Ihrer Rechnung."),
    (("mensch", "person", "mitarbeiter", "human"), "request_human", "Ich verbinde Sie mit einer Person aus unserem Team."),
    (("abschlag",), "change_instalment", "Ich kann Ihren Abschlag ändern. Welchen Betrag wünschen Sie?"),
]


async def engine_turn(request: web.Request) -> web.Response:
    body = await request.json()
    text = body["message"].lower()
    intent, answer = "greet", "Hallo! Ich helfe bei Zählerständen, Störungen, Abschlägen und Öffnungszeiten."
    for words, name, reply in ANSWERS:
        if any(w in text for w in words):
            intent, answer = name, reply
            break
    return web.json_response({
        "messages": [{"text": answer}] if answer else [],
        "parse_data": {"intent": {"name": intent, "confidence": 0.96}, "entities": []},
        "slots": {**body["set_slots"]}, "active_loop": None,
    })


async def verified_telegram(db: Database, sender: str, chat: str) -> None:
    """The customer also wrote on Telegram, linked by a continue code: the profile shows both."""
    from sqlalchemy import select

    from resonanz.store.models import ChannelIdentity, utcnow

    async with db.session() as s:
        customer_id = await s.scalar(select(ChannelIdentity.customer_id).where(ChannelIdentity.external_id == sender))
        s.add(ChannelIdentity(customer_id=customer_id, channel="telegram", external_id=chat,
                              address={"channel": "telegram", "recipient": chat, "extra": {}},
                              verified_by="continue_code", verified_at=utcnow()))


async def main(out: Path) -> None:
    from playwright.async_api import async_playwright

    from resonanz.app import create_app

    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="resonanz-shots-"))
    engine_app = web.Application()
    engine_app.router.add_post(TURN_PATH, engine_turn)
    engine_app.router.add_get("/status", lambda r: web.json_response({"model_file": "stand-in"}))
    engine = TestServer(engine_app, host="127.0.0.1")
    await engine.start_server()
    host_app = web.Application()
    site_of: dict[str, str] = {}
    host_app.router.add_get("/", lambda request: page_html(request))
    host = TestServer(host_app, host="127.0.0.1")
    await host.start_server()
    host_origin = str(host.make_url("")).rstrip("/")
    url = f"sqlite+aiosqlite:///{tmp / 'shots.db'}"
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    settings = Settings(DATABASE_URL=url, engine_url=str(engine.make_url("")).rstrip("/"), connectors=("rest", "webchat"),
                        var_dir=tmp, connector_options={"webchat": {"allowed_origins": [host_origin]}})
    gateway = TestServer(await create_app(settings, db=db), host="127.0.0.1")
    await gateway.start_server()
    gw = site_of["gateway"] = str(gateway.make_url("")).rstrip("/")

    async def page_html(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            "<!doctype html><html lang='de'><head><meta charset='utf-8'><title>Stadtwerke Beispiel</title>"
            "<style>body{font-family:Georgia,serif;margin:0;background:#f6f1e7} header{background:#2d5016;color:#fff;padding:24px}"
            "main{padding:24px;max-width:720px} .cookie{position:fixed;bottom:0;left:0;right:0;background:#222;color:#fff;"
            "padding:14px;z-index:99999}</style></head><body><header><h1>Stadtwerke Beispiel</h1></header>"
            "<main><h2>Strom und Gas für Ihre Stadt</h2><p>Hier finden Sie Tarife, Störungsmeldungen und Ihren Kundenservice.</p></main>"
            "<div class='cookie'>Wir verwenden Cookies. <button>OK</button></div>"
            f"<script src='{gw}/webchat/widget.js' defer></script></body></html>"))

    try:
        await create_agent(db, email="petra@stadtwerke.example", password=PASSWORD, display_name="Petra Schmidt",
                           role="admin", skills=("general",), languages=("de", "en"), capacity=5)
        async with ClientSession() as http:
            for sender, lines in {
                "+4915112345678": ["Mein Zähler zeigt seit gestern seltsame Werte", "Ich möchte bitte mit einem Mitarbeiter sprechen"],
                "+4917099887766": ["Mein Abschlag ist viel zu hoch", "Mensch bitte"],
                "+4916055566677": ["Wann haben Sie geöffnet?", "Ich will eine Person sprechen"],
            }.items():
                for line in lines:
                    await http.post(gw + "/webhooks/rest/webhook", json={"sender": sender, "message": line})
        await verified_telegram(db, "+4915112345678", "5550123")

        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"], headless=True)
            # The web chat on a phone.
            ctx = await browser.new_context(locale="de-DE", viewport={"width": 390, "height": 844}, device_scale_factor=2)
            chat = await ctx.new_page()
            await chat.goto(gw + "/chat")
            await chat.get_by_test_id("resonanz-input").fill("Ich möchte meinen Zählerstand melden")
            await chat.get_by_test_id("resonanz-send").click()
            await chat.locator('[data-testid="resonanz-message"][data-author="bot"]').first.wait_for(timeout=15_000)
            await chat.screenshot(path=str(out / "chat.png"))
            await ctx.close()
            # The widget on another site.
            ctx = await browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 800})
            site = await ctx.new_page()
            await site.goto(host_origin + "/")
            await site.wait_for_timeout(1000)  # a picture, not a test: let the launcher settle
            launcher = site.locator("[data-testid=resonanz-launcher], .resonanz-launcher").first
            if await launcher.count():
                await launcher.dispatch_event("click")  # the cookie bar may cover it until the widget is isolated
                await site.wait_for_timeout(500)
            box = site.get_by_test_id("resonanz-input")
            if await box.count():
                await box.fill("Wann haben Sie geöffnet?")
                await site.get_by_test_id("resonanz-send").click()
                await site.locator('[data-testid="resonanz-message"][data-author="bot"]').first.wait_for(timeout=15_000)
            await site.screenshot(path=str(out / "widget.png"))
            await ctx.close()
            # The agent console.
            for name, viewport in (("console.png", {"width": 1280, "height": 800}), ("console-phone.png", {"width": 390, "height": 844})):
                ctx = await browser.new_context(locale="de-DE", viewport=viewport)
                agent = await ctx.new_page()
                await agent.goto(gw + "/console")
                await agent.get_by_test_id("login-email").fill("petra@stadtwerke.example")
                await agent.get_by_test_id("login-password").fill(PASSWORD)
                await agent.get_by_test_id("login-submit").click()
                await agent.get_by_test_id("queue-item").first.wait_for(timeout=15_000)
                await agent.get_by_test_id("queue-item").last.click()
                await agent.get_by_test_id("context-reason").wait_for()
                if name == "console.png":
                    await agent.get_by_test_id("reply-input").fill("Guten Tag, hier ist Petra. Ich sehe mir Ihren Zähler gleich an.")
                await agent.wait_for_timeout(300)
                await agent.screenshot(path=str(out / name))
                await ctx.close()
            await browser.close()
    finally:
        await gateway.close()
        await host.close()
        await engine.close()
        await db.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
    for name in ("chat.png", "widget.png", "console.png", "console-phone.png"):
        print(out / name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    asyncio.run(main(parser.parse_args().out))
