"""Training the model and running the Rasa engine as a child process (local use and tests).

The engine lives in its own Python 3.10 virtual environment (`.venv-engine`); this module only
calls its `rasa` executable. `LocalEngines` runs a pool of them (`RESONANZ_ENGINES`). In
production `RESONANZ_ENGINE_URL(S)` point at external engines and nothing here runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog
import yaml

from resonanz.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from resonanz.settings import Settings

log = structlog.get_logger(__name__)

MODEL_NAME = "resonanz"
# An engine that ran this long before dying restarts at once, not after the grown back-off.
HEALTHY_UPTIME = 60.0
LOCK_STORE = "bot.rasa_plugin.lock_store.AtomicRedisLockStore"
TRAINING_INPUTS = ("training_data", "domain.yml", "config.yml", "engine-requirements.txt")
TUNING_ENV = "RESONANZ_ENGINE_TUNING"  # read in the engine by bot/rasa_plugin/tuning.py


class Tuning(StrEnum):
    """Engine settings that cut CPU per turn and change no answer. All are on unless an
    `EngineConfig` leaves some out (bench/engine_turn.py measures each; docs/operations.md)."""

    # In the engine (bot/rasa_plugin/tuning.py): action-server responses are checked against a
    # JSON schema compiled once, not re-validated and re-compiled on every action call.
    RESPONSE_SCHEMA = "response-schema"
    # Action calls carry the tracker but not the domain (Rasa's `enable_selective_domain`): the
    # gateway's action server never reads it, and encoding and decoding it costs on both sides.
    # An action marked `send_domain: true` in domain.yml still gets it.
    SELECTIVE_DOMAIN = "selective-domain"
    # In the engine: tracker-store commits do not wait for the disk (SQLite WAL with
    # synchronous=NORMAL, PostgreSQL synchronous_commit=off). Rasa's SQL tracker store is
    # synchronous, so each fsync blocked the engine's whole event loop (~10 ms per turn here).
    # Safe against a crash of the engine; an OS crash or power cut may drop the last turns of
    # the engine-side tracker (the gateway keeps the transcript itself).
    TRACKER_COMMIT = "tracker-commit"
    # TensorFlow runs one engine's tiny models on `tf_threads` threads, not one per core each:
    # several engines on one machine would otherwise contend for the same cores.
    TF_THREADS = "tf-threads"


ENGINE_SIDE_TUNING = frozenset({Tuning.RESPONSE_SCHEMA, Tuning.TRACKER_COMMIT})


def engine_venv() -> Path:
    return Path(os.environ.get("RESONANZ_ENGINE_VENV", PROJECT_ROOT / ".venv-engine"))


def rasa_executable() -> Path:
    exe = engine_venv() / "bin" / "rasa"
    if not exe.exists():
        raise FileNotFoundError(
            f"the engine environment is missing ({exe}); run `make setup` (or the README's run command)"
        )
    return exe


def engine_threads(engines: int, cores: int | None = None) -> int:
    """TensorFlow threads for each of `engines` local engines: the cores shared out, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, engines))


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env["RASA_TELEMETRY_ENABLED"] = "false"
    # Let the engine import the engine-side channel in bot/rasa_plugin/.
    env["PYTHONPATH"] = str(PROJECT_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def training_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """A hash over everything the model is trained from; a change means retraining."""
    h = hashlib.sha256()
    for name in TRAINING_INPUTS:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.exists():
                h.update(str(f.relative_to(root)).encode())
                h.update(b"\0")
                h.update(f.read_bytes())
                h.update(b"\0")
    return h.hexdigest()


def model_path(models_dir: Path) -> Path:
    return models_dir / f"{MODEL_NAME}.tar.gz"


def train(models_dir: Path, *, force: bool = False, root: Path = PROJECT_ROOT) -> bool:
    """Train when the training inputs changed (or `force`). Returns True if it trained."""
    models_dir.mkdir(parents=True, exist_ok=True)
    stamp = models_dir / "fingerprint.txt"
    fingerprint = training_fingerprint(root)
    if not force and model_path(models_dir).exists() and stamp.exists() and stamp.read_text().strip() == fingerprint:
        return False
    cmd = [
        str(rasa_executable()), "train",
        "--data", str(root / "training_data"),
        "--domain", str(root / "domain.yml"),
        "--config", str(root / "config.yml"),
        "--out", str(models_dir),
        "--fixed-model-name", MODEL_NAME,
    ]
    print(f"Training the model (inputs changed) -> {model_path(models_dir)}", file=sys.stderr, flush=True)
    env = engine_env()
    if not sys.stderr.isatty():
        env.setdefault("TQDM_DISABLE", "1")  # progress bars only for people, not for CI logs
    subprocess.run(cmd, cwd=root, env=env, check=True)
    stamp.write_text(fingerprint + "\n")
    return True


def _tracker_store(database_url: str | None, var_dir: Path, index: int = 0) -> dict[str, object]:
    """The engine's tracker store: the same PostgreSQL as the gateway, shared by every engine of a
    pool; or, with SQLite, one file per engine (SQLite is not for several writing processes)."""
    if database_url and database_url.startswith(("postgresql", "postgres")):
        u = urlsplit(database_url.replace("+asyncpg", ""))
        store: dict[str, object] = {
            "type": "SQL",
            "dialect": "postgresql",
            "url": u.hostname or "127.0.0.1",
            "port": u.port or 5432,
            "db": (u.path or "/").lstrip("/"),
        }
        if u.username:
            store["username"] = u.username
        if u.password:
            store["password"] = u.password
        return store
    name = "trackers.db" if index == 0 else f"trackers-{index}.db"
    return {"type": "SQL", "dialect": "sqlite", "db": str(var_dir / "engine" / name)}


def _lock_store(redis_url: str) -> dict[str, object]:
    """Rasa's RedisLockStore (made atomic across processes, bot/rasa_plugin/lock_store.py):
    engines sharing a tracker store never run one sender at once."""
    u = urlsplit(redis_url)
    store: dict[str, object] = {
        "type": LOCK_STORE,
        "url": u.hostname or "127.0.0.1",
        "port": u.port or 6379,
        "db": int((u.path or "/").lstrip("/") or 0),
        "key_prefix": "resonanz",
        "use_ssl": u.scheme == "rediss",
    }
    if u.username:
        store["username"] = u.username
    if u.password:
        store["password"] = u.password
    return store


class EngineStartError(RuntimeError):
    """The engine cannot start; the message is one line for the operator."""


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_our_engine(pid: int, port: int) -> bool:
    """The process is a Resonanz engine launcher on this port (not a reused pid)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        # No /proc (macOS): trust the pid file only if the process exists and leads its group.
        try:
            return os.getpgid(pid) == pid
        except (ProcessLookupError, PermissionError):
            return False
    return b"bot.rasa_plugin.launch" in args and str(port).encode() in args


async def _stop_group(pid: int, timeout: float = 15.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        if await _exited(pid, timeout):
            return


async def _exited(pid: int, timeout: float) -> bool:
    """Wait until a process that is not our child exits (pidfd where Linux has it)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except (AttributeError, OSError):
        fd = None
    if fd is None:  # no pidfd: poll, there is no other event for a foreign process
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            await asyncio.sleep(0.1)
        return False
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(fd, lambda: gone.done() or gone.set_result(True))
    try:
        await asyncio.wait_for(gone, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class EngineConfig:
    port: int
    token: str
    action_url: str
    action_token: str
    models_dir: Path
    var_dir: Path
    database_url: str | None = None
    log_file: Path | None = None
    # Position in a local pool: picks the engine's own SQLite tracker store.
    index: int = 0
    # With Redis, the engine locks each sender in Redis (bot/rasa_plugin/lock_store.py).
    redis_url: str | None = None
    # Rasa's own REST channel, unauthenticated: only for the benchmark's direct comparison.
    rest_channel: bool = False
    # The cuts of CPU per turn to apply (all by default; the benchmark compares with none).
    tuning: frozenset[Tuning] = field(default_factory=lambda: frozenset(Tuning))
    # TensorFlow intra- and inter-op threads (with Tuning.TF_THREADS): see `engine_threads`.
    tf_threads: int = 1


class EngineProcess:
    """One `rasa run` child process, bound to 127.0.0.1 with an auth token and telemetry off."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self._log_handle: object | None = None

    def write_config(self) -> tuple[Path, Path]:
        d = self.config.var_dir / "engine"
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        d.chmod(0o700)
        endpoints = d / f"endpoints-{self.config.port}.yml"
        credentials = d / f"credentials-{self.config.port}.yml"
        c = self.config
        action_endpoint: dict[str, object] = {"url": c.action_url, "token": c.action_token}
        if Tuning.SELECTIVE_DOMAIN in c.tuning:
            action_endpoint["enable_selective_domain"] = True
        config: dict[str, object] = {
            "action_endpoint": action_endpoint,
            "tracker_store": _tracker_store(c.database_url, c.var_dir, c.index),
        }
        if c.redis_url:
            config["lock_store"] = _lock_store(c.redis_url)
        endpoints.write_text(yaml.safe_dump(config))
        endpoints.chmod(0o600)
        channels: dict[str, object] = {"bot.rasa_plugin.channel.ResonanzInput": None}
        if self.config.rest_channel:
            channels["rest"] = None
        credentials.write_text(yaml.safe_dump(channels))
        credentials.chmod(0o600)
        return endpoints, credentials

    def command(self, endpoints: Path, credentials: Path, model: Path) -> tuple[list[str], dict[str, str]]:
        """The engine's command line and environment. The token travels in the environment
        only (see bot/rasa_plugin/launch.py): a command line is readable by every local user."""
        python = rasa_executable().parent / "python"
        cmd = [
            str(python), "-m", "bot.rasa_plugin.launch", "run",
            "--enable-api",
            "--interface", "127.0.0.1",
            "--port", str(self.config.port),
            "--model", str(model),
            "--endpoints", str(endpoints),
            "--credentials", str(credentials),
        ]
        env = engine_env()
        env["RESONANZ_ENGINE_TOKEN"] = self.config.token
        env["RESONANZ_ENGINE_PARENT"] = str(os.getpid())
        tuning = self.config.tuning
        env[TUNING_ENV] = ",".join(sorted(t.value for t in tuning & ENGINE_SIDE_TUNING))
        if Tuning.TF_THREADS in tuning:
            # Read by Rasa 3.6 at start-up (rasa/utils/tensorflow/environment.py); an operator's
            # own values win.
            for name in ("TF_INTRA_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS"):
                env.setdefault(name, str(self.config.tf_threads))
        return cmd, env

    @property
    def pid_file(self) -> Path:
        return self.config.var_dir / "engine" / f"engine-{self.config.port}.pid"

    async def _stop_stale(self) -> None:
        """An engine of ours that outlived its gateway (kill -9, power loss on another OS) still
        holds the port: stop it. A port held by anything else is refused with one clear line."""
        pid = _read_pid(self.pid_file)
        if pid is not None and _is_our_engine(pid, self.config.port):
            log.warning("engine.stale_stopped", pid=pid, port=self.config.port)
            await _stop_group(pid)
        self.pid_file.unlink(missing_ok=True)
        if not _port_free(self.config.port):
            raise EngineStartError(
                f"port {self.config.port} for the engine is in use by another program; "
                "stop it or set RESONANZ_ENGINE_PORT"
            )

    async def start(self) -> None:
        endpoints, credentials = self.write_config()
        model = model_path(self.config.models_dir)
        if not model.exists():
            raise FileNotFoundError(f"no trained model at {model}; run `resonanz train`")
        cmd, env = self.command(endpoints, credentials, model)
        await self._stop_stale()
        log_file = self.log_path
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log_file, "ab")  # noqa: SIM115 - lives as long as the child
        self._log_handle = handle
        self.proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=PROJECT_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid_file.write_text(f"{self.proc.pid}\n")
        log.info("engine.started", pid=self.proc.pid, port=self.config.port, log=str(log_file))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    @property
    def log_path(self) -> Path:
        return self.config.log_file or (self.config.var_dir / "log" / f"engine-{self.config.port}.log")

    async def wait_ready(self, timeout: float = 240.0) -> None:
        """Wait until the engine has loaded its model; fail early if the process dies."""
        import aiohttp

        from bot.engine import RasaEngine

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as http:
            probe = RasaEngine(self.url, self.config.token, timeout=5, session=http)
            while not await probe.is_ready():
                if not self.running:
                    tail = self.log_path.read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"the engine exited during start-up:\n{tail}")
                if loop.time() > deadline:
                    raise TimeoutError(f"the engine was not ready after {timeout}s (log: {self.log_path})")
                await asyncio.sleep(0.5)  # an external process: nothing to wait on but its answer

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._log_handle is not None:
            self._log_handle.close()  # type: ignore[attr-defined]
            self._log_handle = None
        self.proc = None
        self.pid_file.unlink(missing_ok=True)

    async def kill(self) -> None:
        """Kill the engine at once (no clean shut-down), as a crash would."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart the engine when it dies, with backoff, until `stop` is set."""
        backoff = 1.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            assert self.proc is not None
            started = loop.time()
            waiter = asyncio.ensure_future(self.proc.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if stop.is_set():
                waiter.cancel()
                return
            if loop.time() - started > HEALTHY_UPTIME:
                backoff = 1.0  # it ran fine for a while: this is a new failure, not a crash loop
            log.error("engine.exited", port=self.config.port, returncode=self.proc.returncode, restart_in=backoff)
            try:
                await asyncio.wait_for(stop.wait(), backoff)
                return
            except TimeoutError:
                pass
            backoff = min(backoff * 2, 60.0)
            if self._log_handle is not None:
                self._log_handle.close()  # type: ignore[attr-defined]
                self._log_handle = None
            try:
                await self.start()
            except Exception:  # noqa: BLE001 - keep supervising: the next round backs off further
                log.exception("engine.restart_failed", port=self.config.port)


class LocalEngines:
    """The engines `resonanz run` starts itself: one `EngineProcess` per config, each on its own
    port with its own pid file, each restarted by its own supervisor when it dies."""

    def __init__(self, configs: list[EngineConfig]) -> None:
        self.processes = [EngineProcess(c) for c in configs]

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalEngines:
        """The local engines of `resonanz run` (`RESONANZ_ENGINES` of them); their actions call
        the gateway's port, whichever gateway process answers there."""
        return cls([
            EngineConfig(
                port=port,
                token=settings.engine_token,
                action_url=f"http://127.0.0.1:{settings.port}/actions/webhook",
                action_token=settings.action_token,
                models_dir=settings.models_dir,
                var_dir=settings.var_dir,
                database_url=settings.database_url,
                index=i,
                redis_url=settings.redis_url,
                tf_threads=engine_threads(settings.engines),  # the cores shared out among the engines
            )
            for i, port in enumerate(settings.local_engine_ports)
        ])

    @property
    def urls(self) -> list[str]:
        return [p.url for p in self.processes]

    async def start(self) -> None:
        """Start all; if one cannot start, stop those already started and raise."""
        try:
            for p in self.processes:
                await p.start()
        except BaseException:
            await self.stop()
            raise

    async def wait_ready(self, timeout: float = 240.0) -> None:
        await asyncio.gather(*(p.wait_ready(timeout) for p in self.processes))

    async def supervise(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(p.supervise(stop) for p in self.processes))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.processes))
