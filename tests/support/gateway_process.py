"""The gateway as a separate process (`resonanz run` with an external engine), so that a test can
kill it with SIGKILL and start another one on the same database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.cli import RESONANZ


def gateway_env(*, database_url: str, engine_url: str, port: int, var_dir: Path, connectors: tuple[str, ...],
                connector_options: Mapping[str, Any], **settings: object) -> dict[str, str]:
    """The environment of `resonanz run` against an engine that is already running. `settings`
    are further Settings fields (RESONANZ_<NAME>), JSON-encoded unless they are strings."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        RESONANZ_ENGINE_URL=engine_url,
        RESONANZ_HOST="127.0.0.1",
        RESONANZ_PORT=str(port),
        RESONANZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
        RESONANZ_VAR_DIR=str(var_dir),
        RESONANZ_CONFIG_FILE=str(var_dir / "no-such-resonanz.yml"),
        RESONANZ_CONNECTORS=json.dumps(list(connectors)),
        RESONANZ_CONNECTOR_OPTIONS=json.dumps(connector_options),
        RESONANZ_LOG_FORMAT="json",
    )
    for name, value in settings.items():
        env["RESONANZ_" + name.upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


class GatewayProcess:
    """One `resonanz run` process; its output goes to `log` (read it when something fails)."""

    def __init__(self, env: Mapping[str, str], log: Path, args: tuple[str, ...] = ()) -> None:
        self.env, self.log, self.args = dict(env), log, args
        self.url = env["RESONANZ_PUBLIC_URL"]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                RESONANZ, "run", "--no-train", *self.args, env=self.env, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        await self.wait_ready(timeout)

    async def wait_ready(self, timeout: float) -> None:
        """Until /readyz says the engine is reachable (polling another process: no event to wait on)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"the gateway exited with {self.proc.returncode}:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(self.url + "/readyz") as r:
                        if r.status == 200 and (await r.json()).get("engine") is True:
                            return
                if loop.time() > deadline:
                    raise AssertionError(f"the gateway was not ready within {timeout}s:\n{self.tail()}")
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no shut-down code runs, as when the machine or the OOM killer stops it."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def tail(self, size: int = 6000) -> str:
        data = self.log.read_bytes() if self.log.exists() else b""
        return data[-size:].decode(errors="replace")
