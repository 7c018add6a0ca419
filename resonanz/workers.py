"""`resonanz run --workers N`: N gateway processes on one host, sharing one port.

The `resonanz run` process becomes a supervisor that serves nothing itself: it starts the local
engines (if any; they are its children alone), then N workers — `python -m resonanz.cli run
--worker-of <pid> --worker-index <k>` — each a whole gateway (`resonanz.cli._serve`) that binds
the port with SO_REUSEPORT, so the Linux kernel spreads new connections across them. Workers use
the engines' URLs and the supervisor's tokens (passed in the environment, never the command line).

A worker that dies is restarted with back-off; one that could not start (exit code 2: the port,
the configuration) stops the whole run with that error. SIGTERM or SIGINT stops every worker
(each stops gracefully: its leases are handed back), then the engines. Every worker and engine
asks the kernel for SIGTERM when the supervisor dies (PR_SET_PDEATHSIG), so kill -9 of the
supervisor leaves no process that keeps the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from typing import Any

import structlog

from resonanz.settings import Settings

log = structlog.get_logger(__name__)

MAX_WORKERS = 64
# A worker exits with this when it cannot start at all (port taken, bad configuration): restarting
# it would only fail again, so the whole run stops with the worker's error.
EXIT_REFUSED = 2
# A worker that ran this long before dying restarts at once, not after the grown back-off.
HEALTHY_UPTIME = 60.0
STOP_TIMEOUT = 30.0


def refusal(settings: Settings, workers: int, turn_workers: int = 0) -> str | None:
    """Why this configuration cannot run `workers` gateway processes (and `turn_workers` turn
    processes), or None."""
    if not 1 <= workers <= MAX_WORKERS:
        return f"--workers must be between 1 and {MAX_WORKERS}"
    if not 0 <= turn_workers <= MAX_WORKERS:
        return f"--turn-workers must be between 0 and {MAX_WORKERS}"
    if workers == 1 and turn_workers == 0:
        return None
    what = "--turn-workers" if turn_workers else "--workers"
    if not sys.platform.startswith("linux"):
        return (f"{what} needs Linux (SO_REUSEPORT spreads connections across processes only there); "
                "elsewhere run one `resonanz run` per port behind the reverse proxy (docs/operations.md)")
    if settings.database_url.startswith("sqlite"):
        return (f"{what} needs PostgreSQL (DATABASE_URL=postgresql://…): SQLite takes one writing process, "
                "and only PostgreSQL's advisory locks keep a conversation's turns in order across processes")
    if not settings.redis_url:
        return (f"{what} needs RESONANZ_REDIS_URL: without Redis, console events, web chat pushes, login limits "
                "and credential revocations stay inside the process where they happen")
    if settings.port == 0:
        return f"{what} needs a fixed RESONANZ_PORT (with port 0 every worker would get a port of its own)"
    return None


def port_in_use(host: str, port: int) -> bool:
    """Something listens on the port already (checked without SO_REUSEPORT, so that a gateway
    worker left over from an earlier start counts too: it would take a share of the connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def worker_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """A worker's environment: the supervisor's, plus the engines it serves (those the supervisor
    started, or the external ones) and the tokens they share; a worker starts no engine."""
    env = dict(os.environ if base is None else base)
    env["RESONANZ_ENGINE_URLS"] = ",".join(settings.resolved_engine_urls)
    env["RESONANZ_ENGINE_TOKEN"] = settings.engine_token
    env["RESONANZ_ACTION_TOKEN"] = settings.action_token
    return env


class Worker:
    """One gateway worker process (or, with a `role` of "turns", one turn process)."""

    def __init__(self, index: int, env: dict[str, str], role: str = "all") -> None:
        self.index = index
        self.env = {**env, "RESONANZ_PROCESS_ROLE": role}
        self.proc: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "resonanz.cli", "run", "--worker-of", str(os.getpid()),
                "--worker-index", str(self.index)]

    async def start(self) -> None:
        # Same process group as the supervisor: Ctrl-C in a terminal reaches every worker too.
        self.proc = await asyncio.create_subprocess_exec(*self.command(), env=self.env)
        log.info("worker.started", index=self.index, pid=self.proc.pid)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.error("worker.kill", index=self.index, pid=proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def keep(self, stop: asyncio.Event, refused: list[int]) -> None:
        """Run the worker until `stop`; restart it with back-off when it dies."""
        loop = asyncio.get_running_loop()
        backoff = 1.0
        while not stop.is_set():
            await self.start()
            assert self.proc is not None
            started = loop.time()
            exited = asyncio.ensure_future(self.proc.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():
                exited.cancel()
                await self.stop()
                return
            code = self.proc.returncode
            if code == EXIT_REFUSED:
                log.error("worker.refused", index=self.index, returncode=code)
                refused.append(code)
                stop.set()
                return
            if loop.time() - started > HEALTHY_UPTIME:
                backoff = 1.0
            log.error("worker.exited", index=self.index, returncode=code, restart_in=backoff)
            try:
                await asyncio.wait_for(stop.wait(), backoff)  # a back-off, ended early by a stop
                return
            except TimeoutError:
                backoff = min(backoff * 2, 60.0)


async def supervise(settings: Settings, count: int, turn_count: int = 0) -> int:
    """Start the local engines (if any), `count` workers and `turn_count` turn processes; run
    until SIGTERM/SIGINT. With turn processes, the workers only store push channels' messages
    and hand them over (`Settings.process_role`): their webhooks' answers never wait behind turns."""
    from bot.engine_process import EngineStartError, LocalEngines
    from resonanz.logs import configure

    configure(settings.log_format, settings.log_level)
    if port_in_use(settings.host, settings.port):
        print(f"error: port {settings.port} on {settings.host} is in use (another gateway or program); "
              "stop it or set RESONANZ_PORT", file=sys.stderr, flush=True)
        return EXIT_REFUSED
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    engines: LocalEngines | None = None
    engine_supervisor: asyncio.Future[Any] | None = None
    if not settings.external_engine_urls:
        engines = LocalEngines.for_settings(settings)
        try:
            await engines.start()
        except EngineStartError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return EXIT_REFUSED
        engine_supervisor = asyncio.ensure_future(engines.supervise(stop))
    env = worker_env(settings)
    workers = [Worker(i, env, "intake" if turn_count else "all") for i in range(count)]
    workers += [Worker(count + i, env, "turns") for i in range(turn_count)]
    refused: list[int] = []
    print(f"Starting {count} gateway workers on port {settings.port}"
          + (f" and {turn_count} turn workers" if turn_count else "") + f" (supervisor pid {os.getpid()})…", flush=True)
    try:
        await asyncio.gather(*(w.keep(stop, refused) for w in workers))
    finally:
        stop.set()
        await asyncio.gather(*(w.stop() for w in workers))
        if engine_supervisor is not None:
            with contextlib.suppress(Exception):
                await engine_supervisor
        if engines is not None:
            await engines.stop()
        print("All workers stopped.", flush=True)
    return refused[0] if refused else 0
