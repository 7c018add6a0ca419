"""Several gateways and engines on one machine, each reached over TCP as if on its own host.

`resonanz topology` (or `Topology` in tests and benches) starts two gateway processes
(`resonanz run` with `RESONANZ_ENGINE_URLS`) and two Rasa engines that share the PostgreSQL
tracker store and the Redis lock store; the gateways share PostgreSQL and Redis. Every process
listens on 127.0.0.1 on a free port and knows the others only by URL, so the topology behaves
as the same processes on separate hosts would (docs/operations.md, "A tested topology").

Engine `i` calls the custom actions on gateway `i mod n`; in production their action endpoint
is the reverse proxy, so a dead gateway costs no engine its actions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

RESONANZ = str(Path(sys.executable).parent / "resonanz")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_env(*, database_url: str, engine_urls: Sequence[str], port: int, var_dir: Path,
                connectors: Sequence[str], connector_options: Mapping[str, Any], config_file: Path | None = None,
                **settings: object) -> dict[str, str]:
    """The environment of `resonanz run` against engines that are already running. `settings`
    are further Settings fields (RESONANZ_<NAME>), JSON-encoded unless they are strings. Without
    `config_file` the gateway reads no resonanz.yml (the bot's actions module, customer-number
    pattern, ...): right for scripted engines, wrong for the reference bot."""
    env = dict(os.environ)
    for name in ("RESONANZ_ENGINE_URL", "RESONANZ_ENGINES", "RESONANZ_REDIS_URL"):
        env.pop(name, None)  # only what this topology says
    env.update(
        DATABASE_URL=database_url,
        RESONANZ_ENGINE_URLS=",".join(engine_urls),
        RESONANZ_HOST="127.0.0.1",
        RESONANZ_PORT=str(port),
        RESONANZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
        RESONANZ_VAR_DIR=str(var_dir),
        RESONANZ_CONFIG_FILE=str(config_file or var_dir / "no-such-resonanz.yml"),
        RESONANZ_CONNECTORS=json.dumps(list(connectors)),
        RESONANZ_CONNECTOR_OPTIONS=json.dumps(connector_options),
        RESONANZ_LOG_FORMAT="json",
    )
    for name, value in settings.items():
        if value is not None:
            env["RESONANZ_" + name.upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


class GatewayProcess:
    """One `resonanz run` process; its output goes to `log` (read it when something fails)."""

    def __init__(self, env: Mapping[str, str], log: Path, args: tuple[str, ...] = ()) -> None:
        self.env, self.log, self.args = dict(env), log, args
        self.url = env["RESONANZ_PUBLIC_URL"]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                RESONANZ, "run", "--no-train", *self.args, env=self.env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        await self.wait_ready(timeout)

    async def readyz(self, http: aiohttp.ClientSession) -> tuple[int, dict]:
        async with http.get(self.url + "/readyz") as r:
            return r.status, await r.json()

    async def wait_ready(self, timeout: float) -> None:
        """Until /readyz says the engine is reachable (polling another process: no event to wait on)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"the gateway exited with {self.proc.returncode}:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, ValueError):
                    status, body = await self.readyz(http)
                    if status == 200 and body.get("engine") is True:
                        return
                if loop.time() > deadline:
                    raise AssertionError(f"the gateway was not ready within {timeout}s:\n{self.tail()}")
                await asyncio.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def kill(self) -> None:
        """SIGKILL: no shut-down code runs, as when the machine or the OOM killer stops it."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            await self.proc.wait()

    async def stop(self, timeout: float = 20) -> None:
        """SIGTERM, as a deploy would; SIGKILL if it does not end in time."""
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                await self.kill()

    def tail(self, size: int = 6000) -> str:
        data = self.log.read_bytes() if self.log.exists() else b""
        return data[-size:].decode(errors="replace")


@dataclass
class Topology:
    """`gateways` gateway processes in front of `engines` local Rasa engines (or of the
    `engine_urls` given), sharing `database_url` (PostgreSQL) and `redis_url`."""

    database_url: str
    redis_url: str | None
    var_dir: Path
    gateways: int = 2
    engines: int = 2
    engine_urls: Sequence[str] = ()  # external engines: none are started
    connectors: Sequence[str] = ("rest", "webchat")
    connector_options: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, object] = field(default_factory=dict)  # further RESONANZ_* for every gateway
    # The bot's configuration; default: the project's resonanz.yml with Rasa engines, none with
    # scripted ones (`engine_urls`).
    config_file: Path | None = None
    engine_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    action_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ports: list[int] = field(default_factory=list)
    processes: list[GatewayProcess] = field(default_factory=list)
    local: Any = None  # bot.engine_process.LocalEngines when the topology starts its engines
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _supervisor: asyncio.Future[Any] | None = None

    @property
    def urls(self) -> list[str]:
        return [g.url for g in self.processes]

    @property
    def all_engine_urls(self) -> list[str]:
        return list(self.engine_urls) or list(self.local.urls)

    def gateway(self, index: int) -> GatewayProcess:
        """The process of gateway `index` (it may be killed and started again on its port)."""
        return self.processes[index]

    async def start(self, timeout: float = 240) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.ports = [free_port() for _ in range(self.gateways)]
        try:
            if not self.engine_urls:
                await self._start_engines(timeout)
            for i, port in enumerate(self.ports):
                env = gateway_env(
                    database_url=self.database_url, engine_urls=self.all_engine_urls, port=port,
                    var_dir=self.var_dir / f"gateway-{i}", connectors=self.connectors,
                    connector_options=self.connector_options, config_file=self._config_file(),
                    engine_token=self.engine_token,
                    action_token=self.action_token, redis_url=self.redis_url, **self.settings,
                )
                self.processes.append(GatewayProcess(env, self.var_dir / "log" / f"gateway-{i}.log"))
            # All at once, as hosts deployed together: each `resonanz run` migrates (one at a time).
            await asyncio.gather(*(g.start(timeout) for g in self.processes))
        except BaseException:
            await self.stop()
            raise

    def _config_file(self) -> Path | None:
        if self.config_file is not None or self.engine_urls:
            return self.config_file
        from resonanz.settings import Settings

        return Settings().config_file

    async def _start_engines(self, timeout: float) -> None:
        from bot.engine_process import EngineConfig, LocalEngines, train
        from resonanz.settings import Settings

        models_dir = Settings().models_dir
        await asyncio.to_thread(train, models_dir)
        self.local = LocalEngines([
            EngineConfig(
                port=free_port(), token=self.engine_token,
                action_url=f"http://127.0.0.1:{self.ports[i % len(self.ports)]}/actions/webhook",
                action_token=self.action_token, models_dir=models_dir, var_dir=self.var_dir, index=i,
                database_url=self.database_url, redis_url=self.redis_url,
            )
            for i in range(self.engines)
        ])
        await self.local.start()
        self._supervisor = asyncio.ensure_future(self.local.supervise(self._stop))
        await self.local.wait_ready(timeout)

    async def stop(self) -> None:
        await asyncio.gather(*(g.stop() for g in self.processes))
        self._stop.set()
        if self._supervisor is not None:
            with contextlib.suppress(Exception):
                await self._supervisor
        if self.local is not None:
            await self.local.stop()

    async def __aenter__(self) -> Topology:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def ensure_database(database_url: str) -> None:
    """Create the PostgreSQL database if it does not exist yet (through the `postgres` database)."""
    import asyncpg
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(database_url.replace("+asyncpg", ""))
    name = parts.path.lstrip("/")
    admin = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")), timeout=10)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name.replace(chr(34), "")}"')
            print(f"created database {name}", flush=True)
    finally:
        await admin.close()


async def _serve(args: argparse.Namespace) -> int:
    from resonanz.logs import configure
    from resonanz.store.migrate import upgrade

    configure("console", "INFO")
    database_url = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/resonanz"
    if not database_url.startswith(("postgresql", "postgres")):
        print("error: the topology needs PostgreSQL (DATABASE_URL=postgresql://…)", file=sys.stderr)
        return 2
    redis_url = os.environ.get("RESONANZ_REDIS_URL") or "redis://127.0.0.1:6379/0"
    await ensure_database(database_url)
    await asyncio.to_thread(upgrade, database_url)
    var_dir = Path(args.var_dir).resolve()
    topology = Topology(database_url, redis_url, var_dir, gateways=args.gateways, engines=args.engines)
    print(f"Starting {args.engines} engines and {args.gateways} gateways (logs in {var_dir})…", flush=True)
    await topology.start()
    print("\nTopology ready:", flush=True)
    for url in topology.all_engine_urls:
        print(f"  engine   {url}", flush=True)
    for url in topology.urls:
        print(f"  gateway  {url}   (REST: POST {url}/webhooks/rest/webhook)", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        print("\nStopping…", flush=True)
        await topology.stop()
    return 0


def add_command(sub: Any) -> None:
    p = sub.add_parser("topology", help="start two gateways and two engines on PostgreSQL and Redis, "
                       "each on its own 127.0.0.1 port as if on separate hosts")
    p.add_argument("--gateways", type=int, default=2)
    p.add_argument("--engines", type=int, default=2)
    p.add_argument("--var-dir", default="var/topology", help="logs and engine files (default var/topology)")
    p.set_defaults(func=lambda args: asyncio.run(_serve(args)))
