"""The gateway application factory: `create_app(settings)` builds everything."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import aiohttp
import structlog
from aiohttp import web

from bot.actions.server import ActionServer
from bot.dispatcher import Dispatcher
from bot.engine_pool import EnginePool
from bot.language import warm_up as language_warm_up
from bot.verification import VerificationPolicy
from connectors import registry
from connectors.base import Connector, ConnectorContext
from handover.api import AgentApi
from handover.auth import LIMITER, auth_routes, install as install_auth
from handover.console import console_routes
from resonanz.reports.api import routes as report_routes
from handover.desk import Desk
from handover.hub import create_hub
from handover.review import ReviewApi
from resonanz import vendor
from resonanz.config import ConfigError, connector_configs
from resonanz.customer_number import CustomerNumbers
from resonanz.http_errors import json_errors
from resonanz.keys import DB, DESK, HUB, SETTINGS  # noqa: F401 - re-exported: tests and bench read them from here
from resonanz.media import MediaStore
from resonanz.metrics import Metrics
from resonanz.settings import Settings
from resonanz.shutdown import InFlight, drain
from resonanz.store import Database
from resonanz.privacy.retention import run_periodically
from resonanz.supervisor import TaskSupervisor

log = structlog.get_logger(__name__)

ENGINE = web.AppKey("engine", EnginePool)
ENGINE_READY = web.AppKey("engine_ready", asyncio.Event)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
CONNECTORS = web.AppKey("connectors", dict)
TASKS = web.AppKey("tasks", TaskSupervisor)
METRICS = web.AppKey("metrics", Metrics)
# Set to end a graceful stop's wait for running turns at once (a second signal to `resonanz run`).
STOP_NOW = web.AppKey("stop_now", asyncio.Event)


async def create_app(settings: Settings, *, db: Database | None = None) -> web.Application:
    """Build the gateway (inside the running event loop). Pass `db` to share a database."""
    # 1 MiB for every body; the agents' picture upload reads its own, larger limit (handover.api).
    app = web.Application(client_max_size=1024**2, middlewares=[json_errors])
    app[SETTINGS] = settings
    app[METRICS] = metrics = Metrics()
    app[STOP_NOW] = asyncio.Event()
    inflight = InFlight()  # turns of connector requests, waited for by a graceful stop
    app[ENGINE_READY] = asyncio.Event()
    app[TASKS] = TaskSupervisor("app")
    connectors: dict[str, Connector] = {}
    app[CONNECTORS] = connectors
    own_db = db is None
    app[DB] = db or Database(settings.database_url, background_sessions=settings.db_background_sessions)
    http = aiohttp.ClientSession()
    app[ENGINE] = EnginePool(
        settings.resolved_engine_urls, settings.engine_token, timeout=settings.engine_timeout, session=http
    )
    dispatcher = Dispatcher(
        db=app[DB],
        engine=app[ENGINE],
        settings=settings,
        engine_ready=app[ENGINE_READY],
        connectors=connectors,
        metrics=metrics,
    )
    app[DISPATCHER] = dispatcher
    app[HUB] = hub = create_hub(settings.redis_url, settings.redis_channel)
    handoff = None
    if settings.process_role != "all":  # intake and turn processes (`resonanz run --turn-workers`)
        if not settings.redis_url:
            raise ConfigError(f"RESONANZ_PROCESS_ROLE={settings.process_role} needs RESONANZ_REDIS_URL")
        dispatcher.handoff = handoff = create_hub(settings.redis_url, settings.redis_channel + ":turns")
    install_auth(app, settings, hub)
    app[DESK] = desk = Desk(db=app[DB], settings=settings, hub=hub, emit=dispatcher.emit, signal=dispatcher.signal)
    dispatcher.desk = desk
    dispatcher.outbox.listeners.append(desk.message_changed)
    media = MediaStore(settings.var_dir / "media", settings.public_url)
    try:
        for name, options in connector_configs(settings).items():
            ctx = ConnectorContext(
                on_message=inflight.track(dispatcher.handle), history=dispatcher.history, settings=settings,
                http=http, config=options, media=media, on_status=dispatcher.delivery_status, db=app[DB],
                accept=inflight.track(dispatcher.accept),
            )
            connector = registry.load(name)(ctx)
            connectors[name] = connector
            app.router.add_routes(connector.routes())
    except BaseException:
        await http.close()
        raise
    app.router.add_routes(ActionServer(
        app[DB], settings.action_token, verification=VerificationPolicy.from_settings(settings), actions=settings.actions,
        customer_numbers=CustomerNumbers(settings.customer_number_pattern), on_verification=metrics.stepup,
        timezone=settings.timezone,
        media=media,
    ).routes())
    app.router.add_routes(auth_routes())
    agent_api = AgentApi(media)
    app.router.add_routes(agent_api.routes())
    app.router.add_routes(ReviewApi(settings.training_root).routes())
    app.router.add_routes(console_routes())
    app.router.add_routes(report_routes())
    app.router.add_routes(vendor.routes())
    app.router.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])
    app.router.add_routes(metrics.routes(app[DB], app[ENGINE], settings.metrics_token))
    # Outermost: counts the final status of refused webhooks.
    app.middlewares.insert(0, metrics.middleware(connectors))

    async def stop_gracefully(app: web.Application) -> None:
        await drain(seconds=settings.shutdown_seconds, inflight=inflight, settled=dispatcher.settled,
                    close_live=[*(c.drain for c in connectors.values()), agent_api.close_streams],
                    hurry=app[STOP_NOW])

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        try:
            await hub.start()  # Redis configured but unreachable: start-up fails here, clearly
            if handoff is not None:
                await handoff.start()
        except BaseException:
            await http.close()
            if own_db:
                await app[DB].dispose()
            raise
        # Before the first webhook: a burst after a restart finds the connections open and the
        # statements of storing a message compiled.
        await app[DB].warm()
        if settings.process_role != "turns":
            await dispatcher.intake.warm()
        for c in connectors.values():
            await c.startup()
        # Language models loaded now, not on the first customer's message (seconds on a busy host).
        await asyncio.to_thread(language_warm_up)
        await dispatcher.outbox.resume()
        dispatcher.outbox.start()
        await desk.recover()
        desk.start()
        # Retried: a database error during crash recovery must not leave messages unanswered.
        watcher = app[TASKS].spawn("engine watch and recovery", lambda: _watch_engine(app), retry=True)
        prober = app[TASKS].spawn(
            "engine probes", lambda: app[ENGINE].watch(settings.engine_probe_seconds), retry=True
        )
        retention = app[TASKS].spawn("retention", lambda: run_periodically(
            app[DB], settings.var_dir, settings.retention_days, settings.retention_sweep_hours * 3600), delay=60, retry=True)
        yield
        watcher.cancel()
        prober.cancel()
        retention.cancel()
        await desk.shutdown()
        await dispatcher.close()  # turns not finished stay `received`: the next start recovers them
        await dispatcher.outbox.close()
        await app[TASKS].close()
        for c in connectors.values():
            await c.shutdown()
        await hub.close()
        if handoff is not None:
            await handoff.close()
        await app[LIMITER].close()
        await http.close()
        if own_db:
            await app[DB].dispose()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(stop_gracefully)
    app.on_response_prepare.append(_security_headers)
    return app


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, errors included: no caching of customer data unless a handler chose
    otherwise (static files do), no MIME sniffing, and no software versions for fingerprinting."""
    response.headers["Server"] = "Resonanz"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")


async def _watch_engine(app: web.Application) -> None:
    """Wait until the engine is ready, then repair what a crash left half done."""
    engine, ready = app[ENGINE], app[ENGINE_READY]
    while not await engine.is_ready():
        await asyncio.sleep(0.5)  # polling an external process: there is no event to wait on
    ready.set()
    log.info("engine.ready", url=engine.base_url, up=engine.up, total=engine.total)
    await app[DISPATCHER].recover()
    app[DISPATCHER].start()  # then sweep now and then for messages whose process is gone


async def healthz(request: web.Request) -> web.Response:
    # The pid tells which process of `resonanz run --workers N` answered.
    return web.json_response({"status": "ok", "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    db_ok = await app[DB].ping()
    pool = app[ENGINE]
    engine_ok = await pool.is_ready() and app[ENGINE_READY].is_set()
    ok = db_ok and engine_ok
    return web.json_response(
        {
            "status": "ready" if ok else "not ready",
            "database": db_ok,
            "engine": engine_ok,  # at least one engine is up
            "engines": {"up": pool.up, "total": pool.total},
        },
        status=200 if ok else 503,
    )
