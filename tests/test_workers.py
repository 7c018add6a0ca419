"""`resonanz run --workers N`: N gateway processes sharing one port (SO_REUSEPORT), on PostgreSQL
and Redis. Run as a real subprocess: requests reach both workers, a Telegram message (fake
provider) is answered exactly once, and neither a stop nor kill -9 of the supervisor leaves a
process behind that keeps the port."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from connectors.fakes.telegram import FakeTelegram, text_update
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Message
from resonanz.store.vocabulary import Direction
from resonanz.workers import port_in_use, refusal, worker_env
from tests.conftest import REDIS_URL, TELEGRAM_SECRET, free_port, make_database_url, migrated_database, require_redis
from tests.support.cli import RESONANZ, _env
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.scripted_engine import ScriptedEngine, serve_engine
from tests.support.settle import pipeline_settled, until

WAIT = 30.0  # a loaded two-core machine starting three Python processes


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    url, drop = await make_database_url("postgresql", tmp_path)
    db = await migrated_database(url)
    await db.dispose()
    try:
        yield url
    finally:
        await drop()


def running(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie holds no port)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Pids:
    """The pids that answered /healthz, each request on a new connection (the kernel picks the
    worker per connection)."""

    def __init__(self, url: str) -> None:
        self.url, self.seen = url, set[int]()

    async def ask(self) -> int:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            async with http.get(self.url + "/healthz") as r:
                assert r.status == 200
                self.seen.add((await r.json())["pid"])
        return len(self.seen)


@pytest.fixture
async def workers(pg_url: str, tmp_path: Path) -> AsyncIterator[tuple[GatewayProcess, FakeTelegram, str]]:
    """`resonanz run --workers 2` against a scripted engine and a fake Telegram; ready."""
    await require_redis()
    async with serve_engine(ScriptedEngine()) as engine_url, FakeTelegram() as tg:
        port = free_port()
        env = gateway_env(
            database_url=pg_url, engine_url=engine_url, port=port, var_dir=tmp_path / "var",
            connectors=("telegram",),
            connector_options={"telegram": {"token": tg.token, "secret": TELEGRAM_SECRET,
                                            "api_base_url": tg.base_url, "file_base_url": tg.base_file_url}},
            redis_url=REDIS_URL, redis_channel=f"test-workers-{uuid.uuid4().hex}", offer_choice_at_start=False,
        )
        gateway = GatewayProcess(env, tmp_path / "gateway.log", args=("--workers", "2"))
        await gateway.start(WAIT)
        try:
            yield gateway, tg, pg_url
        finally:
            await gateway.kill()


async def test_two_workers_share_the_port_answer_once_and_stop_without_leftovers(
    workers: tuple[GatewayProcess, FakeTelegram, str],
) -> None:
    gateway, tg, db_url = workers
    assert gateway.proc is not None
    pids = Pids(gateway.url)
    await until(lambda: _two(pids), "both workers answered", WAIT, gateway.tail)
    assert gateway.proc.pid not in pids.seen  # the supervisor serves nothing itself

    chat = random.randint(10**8, 10**9)
    status, body = await tg.deliver_update(text_update(random.randint(1, 10**9), chat, "Hallo"),
                                           url=gateway.url + "/webhooks/telegram/webhook", secret_token=TELEGRAM_SECRET)
    assert status == 200, body
    db = Database(db_url)
    try:
        await until(lambda: pipeline_settled(db), "the message answered", WAIT, gateway.tail)
        async with db.session() as s:
            stored = await s.scalar(select(func.count()).select_from(Message).where(Message.direction == Direction.OUT))
    finally:
        await db.dispose()
    assert [c.params.get("text") for c in tg.sent if c.params.get("chat_id") == chat] == ["bot:greet"]
    assert stored == 1

    gateway.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(gateway.proc.wait(), WAIT) == 0, gateway.tail()
    assert [pid for pid in pids.seen if running(pid)] == []
    port = int(gateway.url.rsplit(":", 1)[1])
    assert not port_in_use("127.0.0.1", port)


async def _two(pids: Pids) -> bool:
    return await pids.ask() >= 2


async def _more_than(pids: Pids, n: int) -> bool:
    try:
        return await pids.ask() > n
    except aiohttp.ClientError:  # a connection the dead worker had accepted
        return False


async def test_a_dead_worker_is_replaced_and_kill_9_of_the_supervisor_leaves_no_worker_behind(
    workers: tuple[GatewayProcess, FakeTelegram, str],
) -> None:
    gateway, _, _ = workers
    assert gateway.proc is not None
    pids = Pids(gateway.url)
    await until(lambda: _two(pids), "both workers answered", WAIT, gateway.tail)
    dead = min(pids.seen)
    os.kill(dead, signal.SIGKILL)
    await until(lambda: _more_than(pids, 2), "a new worker answered", WAIT, gateway.tail)
    await gateway.kill()
    # The workers are no children of ours: poll until the kernel's SIGTERM has ended them.
    await until(lambda: not any(running(pid) for pid in pids.seen), "the workers ended", WAIT, gateway.tail)
    port = int(gateway.url.rsplit(":", 1)[1])
    assert not port_in_use("127.0.0.1", port)


def test_several_workers_need_linux_postgresql_redis_and_a_fixed_port() -> None:
    pg = "postgresql://u@db/resonanz"
    assert refusal(Settings(DATABASE_URL=pg, redis_url="redis://r"), 1) is None
    assert "PostgreSQL" in (refusal(Settings(DATABASE_URL="sqlite:///x.db", redis_url="redis://r"), 2) or "")
    assert "RESONANZ_REDIS_URL" in (refusal(Settings(DATABASE_URL=pg), 2) or "")
    assert "RESONANZ_PORT" in (refusal(Settings(DATABASE_URL=pg, redis_url="redis://r", port=0), 2) or "")
    assert refusal(Settings(DATABASE_URL=pg, redis_url="redis://r"), 0) is not None
    assert refusal(Settings(DATABASE_URL=pg, redis_url="redis://r"), 2) is None


async def test_run_with_workers_on_sqlite_refuses_with_the_reason(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        RESONANZ, "run", "--no-train", "--workers", "2", env=_env(tmp_path, RESONANZ_REDIS_URL=REDIS_URL),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 2
    assert "--workers needs PostgreSQL" in err.decode()


def test_workers_use_the_engines_the_supervisor_starts_with_its_tokens() -> None:
    settings = Settings(DATABASE_URL="postgresql://u@db/r", engines=2, engine_port=6000,
                        engine_token="e" * 24, action_token="a" * 24)
    env = worker_env(settings, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "RESONANZ_ENGINE_URLS": "http://127.0.0.1:6000,http://127.0.0.1:6001",
                   "RESONANZ_ENGINE_TOKEN": "e" * 24, "RESONANZ_ACTION_TOKEN": "a" * 24}
    # A worker started with that environment starts no engine of its own.
    worker = Settings(DATABASE_URL="postgresql://u@db/r", engine_urls=env["RESONANZ_ENGINE_URLS"])
    assert worker.external_engine_urls == ("http://127.0.0.1:6000", "http://127.0.0.1:6001")
