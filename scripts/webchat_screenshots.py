"""Screenshots of the web chat and the widget for docs/ (docs/webchat.md, README.md).

    .venv/bin/python scripts/webchat_screenshots.py [out_dir]     # default docs/img

Runs a throwaway gateway (SQLite in a temporary directory, the scripted test engine, the
reference bot's greeting and tasks from resonanz.yml) and a host page on another port, and drives
Debian's Chromium: /chat at 1280×800 and 390×844, the widget open on the host page, and the widget
closed with an unread message from an agent. Offline; nothing is kept but the pictures.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOST_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Stadtwerke – Start</title>
<style>body{{margin:0;font:18px Georgia,serif;background:#f4f1ea}} header{{background:#234;color:#fff;padding:24px 40px}}
main{{padding:40px}} .cookies{{position:fixed;left:0;right:0;bottom:0;padding:18px 40px;background:#222;color:#fff;z-index:9999}}</style>
</head><body><header><h1>Stadtwerke Musterstadt</h1></header><main><h2>Strom, Gas und Wasser</h2>
<p>Tarife, Service und Störungsmeldungen.</p></main><div class="cookies">Wir verwenden Cookies. <button>OK</button></div>
<script src="{gateway}/webchat/widget.js" defer></script></body></html>"""


async def main(out: Path) -> None:
    from playwright.async_api import async_playwright, expect
    from sqlalchemy import select

    from handover.auth import create_agent, issue_api_token
    from resonanz.app import create_app
    from resonanz.settings import Settings
    from resonanz.store.models import Agent, Handover
    from tests.browser.conftest import ARGS, CHROMIUM
    from tests.conftest import migrated_database
    from tests.support.scripted_engine import ScriptedEngine, serve_engine

    out.mkdir(parents=True, exist_ok=True)
    webchat = yaml.safe_load((ROOT / "resonanz.yml").read_text())["connectors"]["webchat"]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/shots.db"
        db = await migrated_database(url)
        gateway: dict[str, str] = {}
        host_app = web.Application()
        host_app.router.add_get("/", lambda r: web.Response(text=HOST_PAGE.format(gateway=gateway["url"]),
                                                            content_type="text/html"))
        host = TestServer(host_app, host="127.0.0.1")
        await host.start_server()
        host_url = str(host.make_url("")).rstrip("/")
        async with serve_engine(ScriptedEngine()) as engine_url:
            settings = Settings(DATABASE_URL=url, engine_url=engine_url, engine_startup_wait=0, connectors=("webchat",),
                                var_dir=Path(tmp), connector_options={"webchat": {**webchat, "allowed_origins": [host_url]}})
            server = TestServer(await create_app(settings, db=db), host="127.0.0.1")
            await server.start_server()
            gateway["url"] = str(server.make_url("")).rstrip("/")
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                for name, viewport in (("chat-desktop", {"width": 1280, "height": 800}),
                                       ("chat-phone", {"width": 390, "height": 844})):
                    ctx = await browser.new_context(locale="de-DE", viewport=viewport, device_scale_factor=1)
                    page = await ctx.new_page()
                    await page.goto(gateway["url"] + "/chat")
                    await expect(page.get_by_test_id("resonanz-welcome")).to_be_visible(timeout=15_000)
                    await page.get_by_test_id("resonanz-task").filter(has_text="Öffnungszeiten").click()
                    await expect(page.locator('[data-author="bot"]')).to_have_count(1, timeout=15_000)
                    await page.screenshot(path=str(out / f"{name}.png"))
                    await ctx.close()

                ctx = await browser.new_context(locale="de-DE", viewport={"width": 1280, "height": 800})
                page = await ctx.new_page()
                await page.goto(host_url + "/")
                await page.get_by_test_id("resonanz-launcher").click()
                await page.get_by_test_id("resonanz-input").fill("Ich möchte mit einem Menschen sprechen")
                await page.get_by_test_id("resonanz-send").click()
                await expect(page.get_by_test_id("resonanz-waiting")).to_be_visible(timeout=15_000)
                await page.screenshot(path=str(out / "widget-waiting.png"))
                await page.keyboard.press("Escape")
                await create_agent(db, email="eva@stadtwerke.example", password="correct horse battery",
                                   display_name="Eva Berg")
                async with db.session() as s:
                    agent = await s.scalar(select(Agent).where(Agent.email == "eva@stadtwerke.example"))
                    agent.status = "away"
                    handover_id = await s.scalar(select(Handover.id).order_by(Handover.created_at.desc()).limit(1))
                token = await issue_api_token(db, agent.id)
                import aiohttp

                async with aiohttp.ClientSession(base_url=gateway["url"]) as http:
                    auth = {"Authorization": f"Bearer {token}"}
                    for path, body in (("accept", {}), ("messages", {"text": "Guten Tag, hier ist Eva. Worum geht es?"})):
                        async with http.post(f"/api/v1/handovers/{handover_id}/{path}", json=body, headers=auth) as r:
                            assert r.status in (200, 201), await r.text()
                await expect(page.get_by_test_id("resonanz-preview")).to_be_visible(timeout=15_000)
                await page.screenshot(path=str(out / "widget-unread.png"))
                await ctx.close()
                await browser.close()
            await server.close()
        await host.close()
        await db.dispose()
    for p in sorted(out.glob("*.png")):
        print(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img"))
