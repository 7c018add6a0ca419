"""Issue #8 item 8: with no public URL configured, an agent's picture is stored under a relative
/media/… URL (never the request's Host), and the web chat customer still sees it: the widget
loads it from the gateway it talks to. Real browser, real gateway and database on port 0; the
engine is the scripted fake of tests/test_handover_desk.py."""

from __future__ import annotations

import struct
import zlib

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Page, expect
from sqlalchemy import select

from handover.auth import create_agent, issue_api_token
from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Conversation, Handover
from tests.browser.conftest import browser, page  # noqa: F401 - the fixtures
from tests.support.scripted_engine import ScriptedEngine, serve_engine

pytestmark = [pytest.mark.browser]
__all__ = ["browser", "page"]


@dataclass
class Gateway:
    url: str
    db: Database
    settings: Settings


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(database: Database, tmp_path) -> AsyncIterator[Gateway]:  # noqa: ANN001
    async with serve_engine(ScriptedEngine()) as engine_url:
        settings = Settings(DATABASE_URL=database.url, engine_url=engine_url,
                            connectors=("rest", "webchat"), var_dir=tmp_path, public_url=None)
        server = TestServer(await create_app(settings, db=database), host="127.0.0.1")
        await server.start_server()
        try:
            yield Gateway(str(server.make_url("")).rstrip("/"), database, settings)
        finally:
            await server.close()


def one_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


async def test_the_web_chat_customer_sees_an_agent_picture_without_a_public_url(gateway: Gateway, page: Page) -> None:  # noqa: F811
    assert not gateway.settings.public_url
    await page.goto(gateway.url + "/chat")
    await expect(page.get_by_test_id("resonanz-status")).to_have_text("", timeout=15_000)
    await page.get_by_test_id("resonanz-input").fill("Ich möchte mit einem Menschen sprechen")
    await page.get_by_test_id("resonanz-send").click()
    await expect(page.get_by_test_id("resonanz-widget")).to_have_attribute("data-state", "queued", timeout=30_000)
    async with gateway.db.session() as s:
        hid = await s.scalar(select(Handover.id).join(Conversation, Conversation.id == Handover.conversation_id)
                             .where(Conversation.channel == "webchat", Handover.status.in_(("waiting", "offered")))
                             .order_by(Handover.created_at.desc()).limit(1))
    agent = await create_agent(gateway.db, email="picture-admin@x.de", password="geheim-geheim-42",
                               display_name="Bilder Admin", role="admin")
    auth = {"Authorization": f"Bearer {await issue_api_token(gateway.db, agent.id)}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/api/v1/handovers/{hid}/accept", headers=auth) as resp:
            assert resp.status == 200, await resp.text()
        form = aiohttp.FormData()
        form.add_field("text", "Hier ist der Zähler")
        form.add_field("image", one_pixel_png(), filename="z.png", content_type="image/png")
        async with http.post(f"{gateway.url}/api/v1/handovers/{hid}/messages", headers={**auth, "Host": "evil.example"},
                             data=form) as resp:
            assert resp.status == 201, await resp.text()
            url = (await resp.json())["message"]["attachments"][0]["url"]
    assert url.startswith("/media/")
    image = page.locator(".rz-image")
    await expect(image).to_have_count(1, timeout=15_000)
    await expect(image).to_have_attribute("src", gateway.url + url)
    # The picture inside the chat's Shadow DOM has loaded (or loads now): one pixel wide.
    loaded = await image.evaluate("""i => i.complete ? i.naturalWidth : new Promise(done => {
        i.addEventListener('load', () => done(i.naturalWidth)); i.addEventListener('error', () => done(0)); })""")
    assert loaded == 1
