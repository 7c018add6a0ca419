"""A gateway with Telegram and SMS against local fake providers and an engine that thinks until the
test lets it answer: the `world` fixture."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from connectors.fakes.telegram import FakeTelegram
from connectors.fakes.twilio import FakeTwilio
from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from tests.conftest import TELEGRAM_SECRET, free_port
from tests.support.scripted_engine import ScriptedEngine, serve_engine


class HeldEngine(ScriptedEngine):
    """Thinks until the test lets it answer."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def turn(self, request: web.Request) -> web.Response:
        self.entered.set()
        await self.gate.wait()
        return await super().turn(request)


@dataclass
class World:
    url: str
    app: web.Application
    engine: HeldEngine
    tg: FakeTelegram
    tw: FakeTwilio


@contextlib.asynccontextmanager
async def push_gateway(database: Database, tmp_path: Path, engine_url: str, engine: HeldEngine, tg: FakeTelegram,
                       tw: FakeTwilio, port: int | None = None, **overrides: object) -> AsyncIterator[World]:
    """The real gateway app (Telegram and SMS) on `port`, served until the block ends."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    twilio = {"account_sid": tw.account_sid, "auth_token": tw.auth_token, "api_base_url": tw.base_url,
              "public_url": url, "from": "+4930123456"}
    values: dict[str, object] = dict(
        DATABASE_URL=database.url, engine_url=engine_url, connectors=("telegram", "sms"), var_dir=tmp_path,
        port=port, public_url=url, offer_choice_at_start=False,
        connector_options={"telegram": {"token": tg.token, "secret": TELEGRAM_SECRET, "api_base_url": tg.base_url,
                                        "file_base_url": tg.base_file_url}, "sms": twilio},
    )
    app = await create_app(Settings(**{**values, **overrides}), db=database)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield World(url, app, engine, tg, tw)
    finally:
        await runner.cleanup()


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    engine = HeldEngine()
    async with serve_engine(engine) as engine_url, FakeTelegram() as tg, FakeTwilio() as tw:
        async with push_gateway(database, tmp_path, engine_url, engine, tg, tw) as w:
            try:
                yield w
            finally:
                engine.gate.set()
