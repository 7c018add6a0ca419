"""Telegram's /start: what the bot hears is the bot's configuration (`start_text`; the reference
bot's `/greet` in resonanz.yml), not a word of the framework; the deep-link payload is metadata."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.telegram import TelegramConnector
from connectors.testing import RecordingCore, context
from resonanz.settings import PROJECT_ROOT, Settings
from connectors.fakes.telegram import FakeTelegram, start_update

SECRET = "start-secret_0123"


async def _started(settings: Settings, payload: str | None) -> tuple[str, dict]:
    core = RecordingCore()
    async with FakeTelegram() as fake, aiohttp.ClientSession() as http:
        config = {"token": fake.token, "secret": SECRET, "api_base_url": fake.base_url, "file_base_url": fake.base_file_url}
        connector = TelegramConnector(context(settings, http, core, config))
        await connector.startup()
        app = web.Application()
        app.router.add_routes(connector.routes())
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            body = json.dumps(start_update(7, 4711, payload)).encode()
            async with http.post(server.make_url("/webhooks/telegram/webhook"), data=body, headers={
                "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}) as r:
                assert r.status == 200, await r.text()
        finally:
            await server.close()
            await connector.shutdown()
    [msg] = core.received
    return msg.text, dict(msg.metadata)


@pytest.mark.parametrize("payload", ["order-4711", None])
async def test_start_says_the_configured_start_text(tmp_path: Path, payload: str | None) -> None:
    settings = Settings(var_dir=tmp_path, config_file=PROJECT_ROOT / "resonanz.yml")
    text, metadata = await _started(settings, payload)
    assert text == "/greet"  # the reference bot's start_text
    assert metadata["start_payload"] == payload


async def test_without_a_start_text_the_bot_hears_the_command(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, config_file=tmp_path / "none.yml")
    assert await _started(settings, "x") == ("/start", {"start_payload": "x"})
    settings = Settings(var_dir=tmp_path, config_file=tmp_path / "none.yml", start_text="/hello")
    assert (await _started(settings, None))[0] == "/hello"
