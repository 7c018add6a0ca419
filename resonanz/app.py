"""The gateway application factory: `create_app(settings)` builds everything."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from bot.actions.server import ActionServer
from bot.dispatcher import Dispatcher
from bot.engine import RasaEngine
from connectors import registry
from connectors.base import Connector, ConnectorContext
from handover.api import DESK, AgentApi
from handover.auth import LIMITER, LoginRateLimiter, auth_routes
from handover.console import console_routes
from handover.desk import Desk
from handover.hub import Hub, create_hub
from handover.schemas import api_errors
from resonanz.config import connector_configs
from resonanz.media import MediaStore
from resonanz.settings import Settings
from resonanz.store import Database

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
ENGINE = web.AppKey("engine", RasaEngine)
ENGINE_READY = web.AppKey("engine_ready", asyncio.Event)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
CONNECTORS = web.AppKey("connectors", dict)
BACKGROUND = web.AppKey("background", set)
HUB = web.AppKey("hub", Hub)


async def create_app(settings: Settings, *, db: Database | None = None) -> web.Application:
    """Build the gateway (inside the running event loop). Pass `db` to share a database."""
    app = web.Application(client_max_size=1024**2)
    app[SETTINGS] = settings
    app[ENGINE_READY] = asyncio.Event()
    app[BACKGROUND] = set()
    connectors: dict[str, Connector] = {}
    app[CONNECTORS] = connectors
    own_db = db is None
    app[DB] = db or Database(settings.database_url)
    http = aiohttp.ClientSession()
    app[ENGINE] = RasaEngine(
        settings.resolved_engine_url, settings.engine_token, timeout=settings.engine_timeout, session=http
    )
    dispatcher = Dispatcher(
        db=app[DB],
        engine=app[ENGINE],
        settings=settings,
        engine_ready=app[ENGINE_READY],
        connectors=connectors,
    )
    app[DISPATCHER] = dispatcher
    app[HUB] = hub = create_hub(settings.redis_url, settings.redis_channel)
    app[LIMITER] = LoginRateLimiter()
    app[DESK] = desk = Desk(db=app[DB], settings=settings, hub=hub, emit=dispatcher.emit)
    dispatcher.desk = desk
    dispatcher.outbox.listeners.append(desk.message_changed)
    media = MediaStore(settings.var_dir / "media", settings.public_url)
    try:
        for name, options in connector_configs(settings).items():
            ctx = ConnectorContext(
                on_message=dispatcher.handle, history=dispatcher.history, settings=settings,
                http=http, config=options, media=media, on_status=dispatcher.delivery_status,
            )
            connector = registry.load(name)(ctx)
            connectors[name] = connector
            app.router.add_routes(connector.routes())
    except BaseException:
        await http.close()
        raise
    app.router.add_routes(ActionServer(app[DB], settings.action_token).routes())
    app.router.add_routes(auth_routes())
    app.router.add_routes(AgentApi(media).routes())
    app.middlewares.append(api_errors)  # JSON errors under /api/, also for aiohttp's own 404/405/413
    app.router.add_routes(console_routes())
    app.router.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        try:
            await hub.start()  # Redis configured but unreachable: start-up fails here, clearly
        except BaseException:
            await http.close()
            if own_db:
                await app[DB].dispose()
            raise
        for c in connectors.values():
            await c.startup()
        await dispatcher.outbox.resume()
        await desk.recover()
        watcher = _spawn(app, _watch_engine(app))
        yield
        watcher.cancel()
        await desk.shutdown()
        await dispatcher.outbox.close()
        for task in list(app[BACKGROUND]):
            task.cancel()
        await asyncio.gather(*app[BACKGROUND], return_exceptions=True)
        for c in connectors.values():
            await c.shutdown()
        await hub.close()
        await http.close()
        if own_db:
            await app[DB].dispose()

    app.cleanup_ctx.append(lifecycle)
    return app


def _spawn(app: web.Application, coro: object) -> asyncio.Task[None]:
    """Start a background task and keep a reference to it until it ends."""
    task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
    app[BACKGROUND].add(task)
    task.add_done_callback(app[BACKGROUND].discard)
    return task


async def _watch_engine(app: web.Application) -> None:
    """Wait until the engine is ready, then repair what a crash left half done."""
    engine, ready = app[ENGINE], app[ENGINE_READY]
    while not await engine.is_ready():
        await asyncio.sleep(0.5)  # polling an external process: there is no event to wait on
    ready.set()
    log.info("engine.ready", url=engine.base_url)
    with contextlib.suppress(asyncio.CancelledError):
        await app[DISPATCHER].recover()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    db_ok = await app[DB].ping()
    engine_ok = app[ENGINE_READY].is_set() and await app[ENGINE].is_ready()
    ok = db_ok and engine_ok
    return web.json_response(
        {"status": "ready" if ok else "not ready", "database": db_ok, "engine": engine_ok},
        status=200 if ok else 503,
    )
