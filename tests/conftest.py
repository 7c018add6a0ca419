"""Shared fixtures: databases (SQLite and PostgreSQL), the real trained Rasa engine, a live gateway.

- `database` runs a test once on SQLite and once on PostgreSQL (127.0.0.1:5432). Under CI
  (`CI` set) an unreachable PostgreSQL fails the run instead of skipping.
- `engine_server` trains the model if its inputs changed and starts one real Rasa engine for the
  whole session. Its action endpoint points at a port reserved for the gateway.
- `live_gateway` is the real gateway app on that port, connected to the engine, once per backend.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from resonanz.settings import Settings
from resonanz.store import Database

PG_ADMIN_URL = os.environ.get("RESONANZ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_SERVICES = bool(os.environ.get("CI") or os.environ.get("RESONANZ_REQUIRE_SERVICES"))
BACKENDS = ["sqlite", "postgresql"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- databases ---------------------------------------------------------------------------------


async def _pg_admin():  # type: ignore[no-untyped-def]
    import asyncpg

    dsn = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    return await asyncpg.connect(dsn, timeout=5)


def _service_missing(what: str, exc: BaseException) -> None:
    msg = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if REQUIRE_SERVICES:
        pytest.fail(msg + " — CI requires it; these tests must not be skipped", pytrace=False)
    pytest.skip(msg)

REDIS_URL = os.environ.get("RESONANZ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def require_redis() -> None:
    """Skip (or fail under CI) when the test Redis is not reachable."""
    from redis.asyncio import Redis

    from handover.hub import redacted

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001
        _service_missing("Redis at " + redacted(REDIS_URL), exc)
    finally:
        await client.aclose()



async def make_database_url(backend: str, tmp_dir: Path) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A fresh, empty database of the given backend, and a function that drops it."""
    if backend == "sqlite":
        path = tmp_dir / f"resonanz-{uuid.uuid4().hex[:8]}.db"

        async def drop_sqlite() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)

        return f"sqlite:///{path}", drop_sqlite
    try:
        conn = await _pg_admin()
    except Exception as exc:  # noqa: BLE001
        _service_missing("PostgreSQL at " + PG_ADMIN_URL, exc)
    name = f"resonanz_test_{uuid.uuid4().hex[:10]}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]

    async def drop_pg() -> None:
        c = await _pg_admin()
        try:
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await c.close()

    return f"{base}/{name}", drop_pg


async def migrated_database(url: str) -> Database:
    from resonanz.store.migrate import upgrade

    await asyncio.to_thread(upgrade, url)
    return Database(url)


@pytest_asyncio.fixture(params=BACKENDS, loop_scope="session")
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database: each test using it runs on SQLite and on PostgreSQL."""
    url, drop = await make_database_url(request.param, tmp_path)
    db = await migrated_database(url)
    try:
        yield db
    finally:
        await db.dispose()
        await drop()


# --- the real engine ---------------------------------------------------------------------------


@dataclass
class EngineHandle:
    url: str
    token: str
    action_port: int
    action_token: str
    process: object


async def start_engine(tmp_dir: Path, *, action_port: int | None = None) -> EngineHandle:
    from bot.engine_process import EngineConfig, EngineProcess, train

    settings = Settings()
    await asyncio.to_thread(train, settings.models_dir)
    port, action_port = free_port(), action_port or free_port()
    token, action_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    proc = EngineProcess(
        EngineConfig(
            port=port,
            token=token,
            action_url=f"http://127.0.0.1:{action_port}/actions/webhook",
            action_token=action_token,
            models_dir=settings.models_dir,
            var_dir=tmp_dir,
        )
    )
    await proc.start()
    try:
        await proc.wait_ready()
    except BaseException:
        await proc.stop()
        raise
    return EngineHandle(proc.url, token, action_port, action_token, proc)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EngineHandle]:
    handle = await start_engine(tmp_path_factory.mktemp("engine"))
    try:
        yield handle
    finally:
        await handle.process.stop()  # type: ignore[attr-defined]


# --- the live gateway --------------------------------------------------------------------------


@dataclass
class LiveGateway:
    url: str
    app: web.Application
    db: Database
    settings: Settings
    backend: str
    engine: EngineHandle

    async def post(self, sender: str, message: str, **extra: object) -> dict:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                self.url + "/webhooks/rest/webhook", json={"sender": sender, "message": message, **extra}
            ) as resp:
                assert resp.status == 200, await resp.text()
                return await resp.json()


def gateway_settings(engine: EngineHandle, db_url: str, port: int, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "DATABASE_URL": db_url,
        "engine_url": engine.url,
        "engine_token": engine.token,
        "action_token": engine.action_token,
        "engine_timeout": 20.0,
        "engine_startup_wait": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


async def start_gateway(
    engine: EngineHandle, backend: str, tmp_dir: Path, **overrides: object
) -> tuple[LiveGateway, web.AppRunner, Callable[[], Awaitable[None]]]:
    from bot.reference.demo_data import seed_demo_data
    from resonanz.app import create_app

    url, drop = await make_database_url(backend, tmp_dir)
    db = await migrated_database(url)
    await seed_demo_data(db)
    settings = gateway_settings(engine, url, engine.action_port, **overrides)
    app = await create_app(settings, db=db)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", engine.action_port).start()
    gw = LiveGateway(f"http://127.0.0.1:{engine.action_port}", app, db, settings, backend, engine)

    async def close() -> None:
        await runner.cleanup()
        await db.dispose()
        await drop()

    return gw, runner, close


TELEGRAM_SECRET = "test-webhook-secret_0123"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fake_telegram() -> AsyncIterator[object]:
    """A local Bot API (connectors/fakes/telegram.py) for the real python-telegram-bot."""
    from connectors.fakes.telegram import FakeTelegram

    async with FakeTelegram() as fake:
        yield fake


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fake_twilio() -> AsyncIterator[object]:
    """A local Twilio API (connectors/fakes/twilio.py) for the real twilio client."""
    from connectors.fakes.twilio import FakeTwilio

    async with FakeTwilio() as fake:
        yield fake


def channel_settings(fake_telegram: object, fake_twilio: object, public_url: str) -> dict[str, object]:
    """Settings overrides that enable every channel, each pointed at its local fake provider."""
    tg, tw = fake_telegram, fake_twilio
    twilio = {"account_sid": tw.account_sid, "auth_token": tw.auth_token,  # type: ignore[attr-defined]
              "api_base_url": tw.base_url, "public_url": public_url}  # type: ignore[attr-defined]
    return {
        "connectors": ("rest", "webchat", "telegram", "whatsapp", "sms"),
        "connector_options": {
            "telegram": {"token": tg.token, "secret": TELEGRAM_SECRET,  # type: ignore[attr-defined]
                         "api_base_url": tg.base_url, "file_base_url": tg.base_file_url},  # type: ignore[attr-defined]
            "whatsapp": {**twilio, "from": "whatsapp:+4930123456", "template_sid": "HX" + "0" * 32},
            "sms": {**twilio, "from": "+4930123456"},
        },
        "public_url": public_url,
        "outbox_backoff_base": 0.05,
        "outbox_backoff_max": 2.0,
    }


@pytest_asyncio.fixture(scope="session", params=BACKENDS, loop_scope="session")
async def live_gateway(
    request: pytest.FixtureRequest, engine_server: EngineHandle, tmp_path_factory: pytest.TempPathFactory,
    fake_telegram: object, fake_twilio: object,
) -> AsyncIterator[LiveGateway]:
    """The real gateway with the real engine, on SQLite and then on PostgreSQL, with every channel
    enabled against local fake providers."""
    from resonanz.app import ENGINE_READY

    overrides = channel_settings(fake_telegram, fake_twilio, f"http://127.0.0.1:{engine_server.action_port}")
    gw, _runner, close = await start_gateway(
        engine_server, request.param, tmp_path_factory.mktemp("gw"), **overrides
    )
    try:
        await asyncio.wait_for(gw.app[ENGINE_READY].wait(), 60)
        yield gw
    finally:
        await close()


@pytest.fixture(autouse=True)
def _plain_log_tracebacks() -> None:
    """Logs as the gateway configures them (plain tracebacks). structlog's unconfigured default
    renders a logged exception with rich, locals included: about ten seconds per logged failure
    on a loaded machine, which made every fault test slow."""
    from resonanz.logs import configure

    configure("console", "DEBUG")


@pytest.fixture
def sender() -> str:
    """A fresh customer for each test."""
    return "test-" + uuid.uuid4().hex[:12]


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards (tests of several processes)."""
    url, drop = await make_database_url("postgresql", tmp_path)
    db = await migrated_database(url)
    await db.dispose()
    try:
        yield url
    finally:
        await drop()
