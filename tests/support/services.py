"""A private Redis server and a private PostgreSQL cluster, each on a free port in a temporary
directory, that a fault test may kill and start again without touching the machine's own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import free_port

PG_BIN = Path(os.environ.get("RESONANZ_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


async def _wait_port(port: int, timeout: float, what: str, log: Path) -> None:
    """Until the server accepts connections (another process: poll with a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > deadline:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise AssertionError(f"{what} did not listen on {port} within {timeout}s:\n{tail}") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


class PrivateRedis:
    """`redis-server` without persistence on 127.0.0.1:<free port>."""

    def __init__(self, directory: Path) -> None:
        self.dir, self.port = directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: asyncio.subprocess.Process | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("redis-server")

    async def start(self) -> None:
        binary = self.binary()
        assert binary is not None
        self.dir.mkdir(parents=True, exist_ok=True)
        log = self.dir / "redis.log"
        self.proc = await asyncio.create_subprocess_exec(
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "",
            "--appendonly", "no", "--logfile", str(log), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        await _wait_port(self.port, 10, "redis-server", log)

    async def kill(self) -> None:
        """SIGKILL: connections drop at once, pub/sub subscribers and all keys are gone."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class PrivatePostgres:
    """A PostgreSQL 15 cluster (initdb, trust on 127.0.0.1) run as the `postgres` user when this
    process is root (PostgreSQL refuses to run as root). Its directory is a fresh one under the
    system's temporary directory (pytest's are private to root); `remove()` deletes it."""

    def __init__(self) -> None:
        self.dir, self.port = Path(tempfile.mkdtemp(prefix="resonanz-pg-")), free_port()
        self.data = self.dir / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def available() -> bool:
        return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or shutil.which("runuser") is not None)

    async def _run(self, *cmd: str) -> None:
        if os.geteuid() == 0:
            cmd = ("runuser", "-u", "postgres", "--", *cmd)
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out, _ = await proc.communicate()
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out.decode(errors='replace')}"

    async def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        await self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        await self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "pg.log"),
                        "-w", "start")

    async def stop(self, mode: str = "fast") -> None:
        """`fast`: every session is ended at once, as in a restart for maintenance or a failover."""
        await self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    async def remove(self) -> None:
        """Stop it at once if it runs, and delete its files."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError):
                await self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
