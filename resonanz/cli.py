"""`resonanz` command line: run, train, db upgrade|seed, agent, review, customer, telegram, topology,
check-config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from resonanz.settings import Settings
from resonanz.store.vocabulary import AgentRole

if TYPE_CHECKING:
    from bot.engine_process import EngineConfig


def _settings() -> Settings:
    from resonanz.var import protect_state

    try:
        settings = Settings()
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        sys.exit("Invalid configuration (RESONANZ_* environment variables or resonanz.yml):\n" + "\n".join(lines))
    except ValueError as exc:  # the configuration file itself (an unknown key)
        sys.exit(f"Invalid configuration: {exc}")
    protect_state(settings)
    return settings


def cmd_train(args: argparse.Namespace) -> int:
    from bot.engine_process import model_path, train

    settings = _settings()
    trained = train(settings.models_dir, force=args.force, root=settings.training_root)
    print(("trained " if trained else "model is up to date: ") + str(model_path(settings.models_dir)))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from resonanz.store.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    print("database schema is up to date")
    return 0


async def _seed(settings: Settings) -> bool:
    from bot.reference.demo_data import seed_demo_data  # the only demo data there is
    from resonanz.store import Database

    db = Database(settings.database_url)
    try:
        return await seed_demo_data(db)
    finally:
        await db.dispose()


def cmd_db_seed(args: argparse.Namespace) -> int:
    settings = _settings()
    inserted = asyncio.run(_seed(settings))
    print("demo data inserted" if inserted else "demo data already present")
    return 0


async def _customer(settings: Settings, ref: str, erase: bool) -> dict[str, Any] | None:
    import importlib

    from resonanz.privacy import audit, erase_customer, export_customer
    from resonanz.store import Database
    from resonanz.store.vocabulary import DataAction

    if settings.actions:  # the bot's actions module registers its own tables (resonanz.privacy)
        importlib.import_module(settings.actions)
    db = Database(settings.database_url)
    try:
        if erase:
            counts = await erase_customer(db, ref, settings.var_dir)
            if counts is not None:
                await audit.record(db, audit.CLI_ACTOR, DataAction.ERASE, None)
            return counts
        doc = await export_customer(db, ref, settings.var_dir)
        if doc is not None:
            await audit.record(db, audit.CLI_ACTOR, DataAction.EXPORT, doc["customer"]["id"])
        return doc
    finally:
        await db.dispose()


def cmd_customer_export(args: argparse.Namespace) -> int:
    import json

    doc = asyncio.run(_customer(_settings(), args.customer, erase=False))
    if doc is None:
        sys.exit(f"no customer {args.customer!r}")
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


def cmd_customer_erase(args: argparse.Namespace) -> int:
    if not args.yes:
        sys.exit("this deletes all of the customer's data for good; add --yes")
    counts = asyncio.run(_customer(_settings(), args.customer, erase=True))
    if counts is None:
        sys.exit(f"no customer {args.customer!r}")
    print("erased: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return 0


async def _purge(settings: Settings, days: int) -> dict[str, int]:
    from resonanz.privacy.retention import purge_expired
    from resonanz.store import Database

    db = Database(settings.database_url)
    try:
        return await purge_expired(db, settings.var_dir, days)
    finally:
        await db.dispose()


def cmd_customer_purge(args: argparse.Namespace) -> int:
    settings = _settings()
    days = settings.retention_days if args.days is None else args.days
    if days <= 0:
        print("retention is off (RESONANZ_RETENTION_DAYS=0): nothing deleted")
        return 0
    counts = asyncio.run(_purge(settings, days))
    print(f"older than {days} days: " + (", ".join(f"{k} {v}" for k, v in counts.items() if v) or "nothing due"))
    return 0


def _password(env_name: str) -> str:
    import getpass
    import os

    password = os.environ.get(env_name)
    if password:
        return password
    if not sys.stdin.isatty():
        sys.exit(f"set {env_name} or run this in a terminal to type the password")
    first = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Again: ") != first:
        sys.exit("the passwords differ")
    return first


async def _announce(settings: Settings, event: dict[str, Any]) -> None:
    """Tell running gateways (over Redis, when configured) that an agent's credentials changed:
    they forget cached credentials and close the affected console streams at once. Without Redis
    a gateway notices within seconds (cache) or a minute (open streams)."""
    if not settings.redis_url:
        return
    from handover.hub import HubUnavailable, RedisHub

    hub = RedisHub(settings.redis_url, channel=settings.redis_channel)
    try:
        await hub.start()
    except HubUnavailable as exc:
        print(f"warning: running gateways were not told at once: {exc}", file=sys.stderr)
        return
    hub.publish(event)
    await hub.close()  # sends what is queued first


async def _agent_command(settings: Settings, args: argparse.Namespace) -> int:
    from handover.auth import auth_event, create_agent, issue_api_token, normalise_email, revoke_credentials
    from resonanz.errors import DomainError
    from resonanz.store import Database
    from resonanz.store.models import Agent
    from resonanz.store.vocabulary import AgentRole

    db = Database(settings.database_url)
    try:
        if args.agent_command == "create":
            try:
                agent = await create_agent(
                    db, email=args.email, password=_password("RESONANZ_AGENT_PASSWORD"),
                    display_name=args.name, role=AgentRole.ADMIN if args.admin else AgentRole(args.role),
                    skills=tuple(args.skills.split(",")), languages=tuple(args.languages.split(",")),
                    capacity=args.capacity,
                )
            except DomainError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            print(f"created {agent.role} {agent.email}")
            return 0
        from sqlalchemy import select

        async with db.session() as s:
            agent = await s.scalar(select(Agent).where(Agent.email == normalise_email(args.email)))
        if agent is None:
            print(f"error: no agent with e-mail {args.email}", file=sys.stderr)
            return 1
        if args.agent_command == "token":
            days = settings.api_token_days if args.days is None else args.days
            try:
                token = await issue_api_token(db, agent.id, days=days)
            except DomainError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            if agent.api_token_hash:  # the previous token ended: close its streams
                await _announce(settings, auth_event(agent.id, agent.api_token_hash))
            print(token)
        else:  # revoke
            await revoke_credentials(db, agent.id)
            await _announce(settings, auth_event(agent.id))
            print(f"revoked the sessions and API token of {agent.email}", file=sys.stderr)
        return 0
    finally:
        await db.dispose()


async def _review_export(settings: Settings) -> dict[str, Any]:
    from handover.review import export_reviewed
    from resonanz.store import Database

    db = Database(settings.database_url)
    try:
        return await export_reviewed(db, settings.training_root)
    finally:
        await db.dispose()


def cmd_review_export(args: argparse.Namespace) -> int:
    settings = _settings()
    result = asyncio.run(_review_export(settings))
    print(f"wrote {result['written']} examples ({result['added']} new, {result['skipped']} already in the training "
          f"data) to {result['path']}")
    if result["new_intents"]:
        print("new intents, add them to domain.yml before training: " + ", ".join(result["new_intents"]),
              file=sys.stderr)
    print("next: commit the file, then `resonanz train`", file=sys.stderr)
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    return asyncio.run(_agent_command(_settings(), args))


def cmd_check_config(args: argparse.Namespace) -> int:
    from bot.engine_process import model_path, rasa_executable, training_fingerprint
    from connectors import registry

    from resonanz.config import ConfigError, check_rest_token, load_connector_configs

    settings = _settings()
    problems: list[str] = []
    names: list[str] = []
    try:
        configs = load_connector_configs(settings)
        names = list(configs)
        check_rest_token(settings, configs)
    except ConfigError as exc:
        problems.append(str(exc))
    for name in names:
        try:
            registry.load(name)
        except Exception as exc:  # noqa: BLE001 - report every problem, not the first
            problems.append(f"connector {name!r}: {exc}")
    if not settings.external_engine_urls:
        try:
            rasa_executable()
        except FileNotFoundError as exc:
            problems.append(str(exc))
        model = model_path(settings.models_dir)
        stamp = settings.models_dir / "fingerprint.txt"
        if not model.exists():
            problems.append(f"no trained model at {model} (run `resonanz train`)")
        elif not stamp.exists() or stamp.read_text().strip() != training_fingerprint():
            problems.append("the model is older than training_data/, domain.yml or config.yml (run `resonanz train`)")
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.public_url:
        problems.append("RESONANZ_HOST is not loopback but RESONANZ_PUBLIC_URL is not set")
    print(f"database:   {settings.database_url.split('@')[-1]}")
    where = "external" if settings.external_engine_urls else "local, started by `resonanz run`"
    print(f"engine:     {', '.join(settings.resolved_engine_urls)} ({where})")
    print(f"connectors: {', '.join(names)}")
    print(f"listen:     http://{settings.host}:{settings.port}")
    for p in problems:
        print(f"problem:    {p}", file=sys.stderr)
    print("configuration OK" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


def lower_priority(nice: int) -> None:
    """A turn process: `nice` lower, and on Linux scheduled as batch work (SCHED_BATCH, allowed
    without privileges): the kernel never lets it preempt a process that wakes up - an intake
    process with a webhook to acknowledge - and it gets the CPU in longer, rarer slices.
    (bench/pipeline.py, closed loop: ack p99 29-35 ms with the nice alone, 19-22 ms with SCHED_BATCH too.)"""
    os.nice(nice)
    if hasattr(os, "sched_setscheduler"):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


async def _serve(settings: Settings, *, worker: int | None = None) -> int:
    """One gateway process. `worker` (an index) when it is one of `resonanz run --workers N`:
    it then shares the port with the others (SO_REUSEPORT) and uses the engines the supervisor
    started (resonanz/workers.py)."""
    from aiohttp import web

    from bot.engine_process import EngineStartError, LocalEngines
    from resonanz.app import ENGINE_READY, STOP_NOW, create_app
    from resonanz.logs import configure
    from resonanz.shutdown import HANDLER_GRACE

    configure(settings.log_format, settings.log_level)
    app = await create_app(settings)
    # A stop drains running turns first (resonanz/shutdown.py); then handlers get HANDLER_GRACE.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=HANDLER_GRACE)
    await runner.setup()
    if settings.process_role == "turns":
        # A turn process serves no public port: only its health, on an own loopback port.
        site = web.TCPSite(runner, "127.0.0.1", 0)
        lower_priority(settings.turn_nice)  # the acknowledgements of the intake processes go first
    else:
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=True if worker is not None else None)
    try:
        await site.start()
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr, flush=True)
        await runner.cleanup()
        return 2
    # Everything loaded so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which would otherwise scan it again and again (latency spikes).
    gc.collect()
    gc.freeze()
    base = f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.port}"

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    engine: LocalEngines | None = None
    supervisor: asyncio.Task[Any] | None = None
    try:
        if not settings.external_engine_urls:
            engine = LocalEngines.for_settings(settings)
            try:
                await engine.start()
            except EngineStartError as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                engine = None
                return 2
            supervisor = asyncio.ensure_future(engine.supervise(stop))
        if worker is None:
            print(f"Gateway listening on {base} — waiting for the engine to load the model…", flush=True)
        ready = asyncio.ensure_future(app[ENGINE_READY].wait())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if app[ENGINE_READY].is_set() and settings.process_role == "turns":
            print(f"Turn worker {worker} (pid {os.getpid()}) is ready.", flush=True)
        elif app[ENGINE_READY].is_set() and worker:
            print(f"Gateway worker {worker} (pid {os.getpid()}) is ready.", flush=True)
        elif app[ENGINE_READY].is_set():
            print(
                "\nResonanz is ready" + (f" (gateway worker 0, pid {os.getpid()})" if worker == 0 else "") + ".\n"
                f"  Web chat:       {base}/chat\n"
                f"  Agent console:  {base}/console  (create an agent: resonanz agent create --admin …)\n"
                f"  REST channel:   POST {base}/webhooks/rest/webhook\n"
                f"  Health:         {base}/healthz  {base}/readyz\n"
                "Press Ctrl-C to stop.",
                flush=True,
            )
        await stop.wait()
        ready.cancel()
        stopping.cancel()
    finally:
        if worker is None:
            print("\nStopping… (again: without waiting for running turns)", flush=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, app[STOP_NOW].set)
        stop.set()
        await runner.cleanup()  # first: running turns still need the engine
        if supervisor is not None:
            with contextlib.suppress(Exception):
                await supervisor
        if engine is not None:
            await engine.stop()
    return 0


def cmd_telegram_set_webhook(args: argparse.Namespace) -> int:
    """Register the gateway's Telegram webhook (setWebhook with the secret and update types)."""
    import aiohttp

    from connectors.base import ConnectorContext
    from connectors.telegram import TelegramConnector
    from resonanz.config import ConfigError, connector_configs

    settings = _settings()
    public_url = args.public_url or settings.public_url
    if not public_url:
        print("error: set RESONANZ_PUBLIC_URL (or --public-url) to the gateway's public https:// URL", file=sys.stderr)
        return 2
    try:
        options = settings.connector_options.get("telegram") or connector_configs(
            settings.model_copy(update={"connectors": ("telegram",)})
        )["telegram"]
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def register() -> str:
        async with aiohttp.ClientSession() as http:
            ctx = ConnectorContext(on_message=_unused, history=_unused, settings=settings, http=http, config=options)
            connector = TelegramConnector(ctx)
            await connector.startup()
            try:
                return await connector.register_webhook(public_url)
            finally:
                await connector.shutdown()

    try:
        url = asyncio.run(register())
    except Exception as exc:  # noqa: BLE001 - a clear one-line error for the operator
        print(f"error: setWebhook failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"Telegram webhook registered: {url}")
    return 0


async def _unused(*args: object) -> None:
    raise RuntimeError("not available in this command")


def cmd_run(args: argparse.Namespace) -> int:
    from bot.engine_process import train
    from resonanz.store.migrate import upgrade

    from resonanz.config import ConfigError, connector_configs
    from resonanz.workers import refusal, supervise

    if args.worker_of is not None:
        # One of `--workers N`, started by the supervisor, which trained and migrated already.
        from resonanz.lifetime import die_with_parent

        die_with_parent(args.worker_of)
    settings = _settings()
    problem = refusal(settings, args.workers, args.turn_workers)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        connector_configs(settings)  # a missing secret stops us here, before anything starts
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.worker_of is None:
        if not settings.external_engine_urls and not args.no_train:
            train(settings.models_dir)
        upgrade(settings.database_url)  # demo data only on request: `resonanz db seed` (scripts/setup.sh)
        if args.workers > 1 or args.turn_workers:
            return asyncio.run(supervise(settings, args.workers, args.turn_workers))
    try:
        return asyncio.run(_serve(settings, worker=args.worker_index if args.worker_of is not None else None))
    except ConfigError as exc:  # a connector refused its options (a malformed secret, say)
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="resonanz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train if needed, migrate, start engine and gateway")
    p.add_argument("--no-train", action="store_true", help="use the existing model as it is")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="N gateway processes sharing the port (Linux; needs PostgreSQL and Redis)")
    p.add_argument("--turn-workers", type=int, default=0, metavar="M",
                   help="M processes that answer push channels' messages, so that the gateways' webhook answers "
                        "never wait behind turns (Linux; needs PostgreSQL and Redis)")
    # Internal: how the supervisor of --workers starts each worker (resonanz/workers.py).
    p.add_argument("--worker-of", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("train", help="train the model if training_data/, domain or config changed")
    p.add_argument("--force", action="store_true", help="train even when nothing changed")
    p.set_defaults(func=cmd_train)

    db = sub.add_parser("db", help="database schema and demo data")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="create or migrate the schema").set_defaults(func=cmd_db_upgrade)
    dbsub.add_parser("seed", help="insert the reference bot's demo data").set_defaults(func=cmd_db_seed)

    agent = sub.add_parser("agent", help="console users")
    agentsub = agent.add_subparsers(dest="agent_command", required=True)
    p = agentsub.add_parser("create", help="create an agent; --admin for the first administrator "
                            "(password from RESONANZ_AGENT_PASSWORD or typed)")
    p.add_argument("--email", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--admin", action="store_true", help="the same as --role admin")
    p.add_argument("--role", choices=[r.value for r in AgentRole], default="agent",
                   help="agent (takes conversations), admin, trainer (reviews what the bot missed) "
                   "or supervisor (sees the reports)")
    p.add_argument("--skills", default="general")
    p.add_argument("--languages", default="de,en")
    p.add_argument("--capacity", type=int, default=3)
    p.set_defaults(func=cmd_agent)
    p = agentsub.add_parser("token", help="issue a bearer token for the agent API (replaces the old one); "
                            "valid RESONANZ_API_TOKEN_DAYS days (90) unless --days is given")
    p.add_argument("--email", required=True)
    p.add_argument("--days", type=int, default=None, help="days the token is valid (1-3650)")
    p.set_defaults(func=cmd_agent)
    p = agentsub.add_parser("revoke", help="end every console session and the API token of an agent")
    p.add_argument("--email", required=True)
    p.set_defaults(func=cmd_agent)

    review = sub.add_parser("review", help="the review queue: messages the bot missed, labelled by trainers")
    reviewsub = review.add_subparsers(dest="review_command", required=True)
    reviewsub.add_parser("export", help="write the labelled examples to training_data/nlu/reviewed.yml "
                         "(Rasa YAML; then `resonanz train`)").set_defaults(func=cmd_review_export)

    cust = sub.add_parser("customer", help="a customer's data: export or erase (GDPR)")
    custsub = cust.add_subparsers(dest="customer_command", required=True)
    p = custsub.add_parser("export", help="print (or write) everything stored about a customer as JSON")
    p.add_argument("customer", help="customer id or channel:external id (e.g. telegram:12345)")
    p.add_argument("-o", "--output", help="write to this file (mode 0600) instead of stdout")
    p.set_defaults(func=cmd_customer_export)
    p = custsub.add_parser("erase", help="delete everything stored about a customer, tracker events and media too")
    p.add_argument("customer", help="customer id or channel:external id")
    p.add_argument("--yes", action="store_true", help="really delete")
    p.set_defaults(func=cmd_customer_erase)
    p = custsub.add_parser("purge", help="delete conversations idle for longer than the retention period, now")
    p.add_argument("--days", type=int, help="the period (default: RESONANZ_RETENTION_DAYS, 365)")
    p.set_defaults(func=cmd_customer_purge)

    tg = sub.add_parser("telegram", help="Telegram set-up")
    tgsub = tg.add_subparsers(dest="telegram_command", required=True)
    p = tgsub.add_parser("set-webhook", help="register <public_url>/webhooks/telegram/webhook with Telegram")
    p.add_argument("--public-url", help="default: RESONANZ_PUBLIC_URL")
    p.set_defaults(func=cmd_telegram_set_webhook)

    from resonanz.topology import add_command

    add_command(sub)

    sub.add_parser("check-config", help="validate settings, connectors, engine and model").set_defaults(
        func=cmd_check_config
    )

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
