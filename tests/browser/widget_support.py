"""The web chat test site shared by the browser tests: one gateway (SQLite, the scripted engine)
and a hostile third-party host page per module, and the helpers that drive a chat in it."""

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


REFERENCE_WEBCHAT = yaml.safe_load((Path(__file__).resolve().parents[2] / "resonanz.yml").read_text())["connectors"]["webchat"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
BOT = '[data-testid="resonanz-message"][data-author="bot"]'
SYSTEM = '[data-testid="resonanz-message"][data-author="system"]'
AGENT = '[data-testid="resonanz-message"][data-author="agent"]'
CUSTOMER = '[data-testid="resonanz-message"][data-author="customer"]'
HOSTILE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Host shop</title>
<style>
  * {{ text-transform: uppercase !important; font-family: "Times New Roman", serif !important; }}
  button {{ background: hotpink; font-size: 9px; }}
  .cookies {{ position: fixed; left: 0; right: 0; bottom: 0; height: 120px; z-index: 99999;
              background: #222; color: #fff; }}
</style></head><body><main><h1>Host shop</h1><p>Products</p><a href="#top">Top</a></main>
<div class="cookies" role="region" aria-label="Cookies">We use cookies <button>OK</button></div>
<script src="{gateway}/webchat/widget.js" defer></script></body></html>"""


class Site:
    def __init__(self, gateway: str, host: str, db: object) -> None:
        self.url, self.host, self.db = gateway, host, db


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    var_dir = tmp_path_factory.mktemp("webchat-ui")
    url, drop = await make_database_url("sqlite", var_dir)
    db = await migrated_database(url)
    gateway: dict[str, str] = {}

    async def host_page(request: web.Request) -> web.Response:
        return web.Response(text=HOSTILE.format(gateway=gateway["url"]), content_type="text/html")

    host_app = web.Application()
    host_app.router.add_get("/", host_page)
    host = TestServer(host_app, host="127.0.0.1")
    await host.start_server()
    host_origin = str(host.make_url("")).rstrip("/")
    async with serve_engine(ScriptedEngine()) as engine_url:
        settings = Settings(
            DATABASE_URL=url, engine_url=engine_url, engine_startup_wait=0, connectors=("webchat",), var_dir=var_dir,
            # The reference bot's greeting and tasks (resonanz.yml), and the host page's origin.
            connector_options={"webchat": {**REFERENCE_WEBCHAT, "allowed_origins": [host_origin]}},
        )
        app = await create_app(settings, db=db)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        gateway["url"] = str(server.make_url("")).rstrip("/")
        try:
            yield Site(gateway["url"], host_origin, db)
        finally:
            await server.close()
            await host.close()
            await db.dispose()
            await drop()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser):  # noqa: ANN001, ANN201
    ctx = await browser.new_context(locale="de-DE", viewport=DESKTOP, bypass_csp=True)
    yield ctx
    await ctx.close()


async def open_chat(ctx, url: str) -> Page:  # noqa: ANN001
    page = await ctx.new_page()
    await page.goto(url)
    await expect(page.get_by_test_id("resonanz-welcome")).to_be_visible(timeout=15_000)
    await expect(page.get_by_test_id("resonanz-status")).to_have_text("")
    return page


async def say(page: Page, text: str) -> None:
    await page.get_by_test_id("resonanz-input").fill(text)
    await page.get_by_test_id("resonanz-send").click()


async def handover_of(site: Site, page: Page) -> str:
    token = await page.evaluate("localStorage.getItem('resonanz.token')")
    async with site.db.session() as s:  # type: ignore[attr-defined]
        session_id = await s.scalar(select(WebChatSession.id).where(
            WebChatSession.token_hash == hashlib.sha256(token.encode()).hexdigest()))
        customer_id = await s.scalar(select(ChannelIdentity.customer_id).where(
            ChannelIdentity.channel == "webchat", ChannelIdentity.external_id == session_id))
        return await s.scalar(
            select(Handover.id).join(Conversation, Conversation.id == Handover.conversation_id)
            .where(Conversation.customer_id == customer_id).order_by(Handover.created_at.desc()).limit(1))


async def agent_api(site: Site, name: str) -> dict[str, str]:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@stadtwerke.example"
    await create_agent(site.db, email=email, password="correct horse battery", display_name=f"{name} Berg")
    async with site.db.session() as s:  # type: ignore[attr-defined]
        agent = await s.scalar(select(Agent).where(Agent.email == email))
        agent.status = "away"
        agent_id = agent.id
    return {"Authorization": f"Bearer {await issue_api_token(site.db, agent_id)}"}


async def post(site: Site, handover_id: str, path: str, body: dict, auth: dict[str, str]) -> None:
    async with aiohttp.ClientSession(base_url=site.url) as http, \
            http.post(f"/api/v1/handovers/{handover_id}/{path}", json=body, headers=auth) as r:
        assert r.status in (200, 201, 204), await r.text()
