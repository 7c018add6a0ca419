"""`resonanz run --workers N`: N gateway processes sharing one port (SO_REUSEPORT), on PostgreSQL
and Redis. Run as a real subprocess: requests reach both workers, a Telegram message (fake
provider) is answered exactly once, and neither a stop nor kill -9 of the supervisor leaves a
process behind that keeps the port."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
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
from tests.conftest import REDIS_URL, TELEGRAM_SECRET, free_port, require_redis
from tests.support.cli import RESONANZ, _env
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.scripted_engine import ScriptedEngine, serve_engine
from tests.support.settle import pipeline_settled, until

WAIT = 30.0  # a loaded two-core machine starting three Python processes



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


def fake_engine_venv(root: Path) -> Path:
    """An engine environment whose `python -m bot.rasa_plugin.launch run … --port P` starts a
    scripted engine on P instead of Rasa (a real one takes 30-100 s to load on this machine)."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "rasa").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "python").write_text(
        "#!/bin/sh\n"
        'port=""\n'
        'while [ $# -gt 0 ]; do [ "$1" = "--port" ] && port="$2"; shift; done\n'
        f'exec {sys.executable} -m tests.support.scripted_engine --port "$port"\n'
    )
    for name in ("rasa", "python"):
        (bin_dir / name).chmod(0o755)
    return root


async def test_only_the_supervisor_runs_the_local_engine_and_every_worker_uses_it(pg_url: str, tmp_path: Path) -> None:
    """With a local engine: the supervisor starts it (its child, one pid file), the workers call
    it, and a stop takes it along."""
    await require_redis()
    env = _env(tmp_path, DATABASE_URL=pg_url, RESONANZ_REDIS_URL=REDIS_URL,
               RESONANZ_REDIS_CHANNEL=f"test-workers-{uuid.uuid4().hex}", RESONANZ_CONNECTORS='["rest"]',
               RESONANZ_OFFER_CHOICE_AT_START="false",
               RESONANZ_ENGINE_VENV=str(fake_engine_venv(tmp_path / "engine-venv")))
    env["RESONANZ_PUBLIC_URL"] = f"http://127.0.0.1:{env['RESONANZ_PORT']}"
    gateway = GatewayProcess(env, tmp_path / "gateway.log", args=("--workers", "2"))
    try:
        await gateway.start(WAIT)
        assert gateway.proc is not None
        engine_dir = Path(env["RESONANZ_VAR_DIR"]) / "engine"
        pid_files = list(engine_dir.glob("*.pid"))
        assert [p.name for p in pid_files] == [f"engine-{env['RESONANZ_ENGINE_PORT']}.pid"]
        engine_pid = int(pid_files[0].read_text())
        assert _parent(engine_pid) == gateway.proc.pid
        pids = Pids(gateway.url)
        await until(lambda: _two(pids), "both workers answered", WAIT, gateway.tail)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            for sender in ("w-1", "w-2", "w-3", "w-4"):  # new connections: both workers take some
                async with http.post(gateway.url + "/webhooks/rest/webhook",
                                     json={"sender": sender, "message": "Hallo"}) as r:
                    body = await r.json()
                    assert body["state"] == "bot" and body["messages"] == [{"text": "bot:greet"}], body
        gateway.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(gateway.proc.wait(), WAIT) == 0, gateway.tail()
        assert not running(engine_pid) and not list(engine_dir.glob("*.pid"))
        assert [pid for pid in pids.seen if running(pid)] == []
        for port in (env["RESONANZ_PORT"], env["RESONANZ_ENGINE_PORT"]):
            assert not port_in_use("127.0.0.1", int(port))
    finally:
        await gateway.kill()


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
