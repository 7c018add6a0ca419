"""`resonanz run --workers 1 --turn-workers M` (PostgreSQL and Redis): the gateway process only
stores push channels' messages and answers their webhooks; M turn processes, serving no public
port, answer them. Run as real subprocesses against a fake Telegram and a scripted engine in this
process: every message is answered exactly once, none by the gateway process, and a turn process
killed -9 while its turns wait for the engine loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from connectors.fakes.telegram import FakeTelegram, text_update
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Message
from resonanz.store.vocabulary import Direction
from resonanz.workers import refusal
from tests.conftest import REDIS_URL, TELEGRAM_SECRET, free_port, require_redis
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.scripted_engine import ScriptedEngine, serve_engine
from tests.support.settle import pipeline_settled, until

WAIT = 45.0  # a loaded two-core machine starting four Python processes


class HeldEngine(ScriptedEngine):
    """Holds every turn until `release`; `arrived` is set once `expected` turns wait."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.gate = asyncio.Event()
        self.arrived = asyncio.Event()
        self.waiting = 0

    async def turn(self, request: web.Request) -> web.Response:
        self.waiting += 1
        if self.waiting >= self.expected:
            self.arrived.set()
        await self.gate.wait()
        return await super().turn(request)



async def start(engine_url: str, tg: FakeTelegram, pg_url: str, tmp_path: Path, turn_workers: int) -> GatewayProcess:
    env = gateway_env(
        database_url=pg_url, engine_url=engine_url, port=free_port(), var_dir=tmp_path / "var",
        connectors=("telegram",),
        connector_options={"telegram": {"token": tg.token, "secret": TELEGRAM_SECRET,
                                        "api_base_url": tg.base_url, "file_base_url": tg.base_file_url}},
        redis_url=REDIS_URL, redis_channel=f"test-turn-workers-{uuid.uuid4().hex}", offer_choice_at_start=False,
        # A killed turn process's leases run out soon, and the sweep looks often.
        turn_lease_seconds=3, turn_sweep_seconds=1,
    )
    gateway = GatewayProcess(env, tmp_path / "gateway.log",
                             args=("--workers", "1", "--turn-workers", str(turn_workers)))
    await gateway.start(WAIT)
    return gateway


async def send(tg: FakeTelegram, gateway: GatewayProcess, chat: int, text: str) -> None:
    status, body = await tg.deliver_update(text_update(random.randint(1, 10**9), chat, text),
                                           url=gateway.url + "/webhooks/telegram/webhook", secret_token=TELEGRAM_SECRET)
    assert status == 200, body


def replies(tg: FakeTelegram, chats: list[int]) -> Counter[int]:
    return Counter(c.params.get("chat_id") for c in tg.sent if c.params.get("chat_id") in chats)


async def answered(db_url: str, gateway: GatewayProcess) -> int:
    """Wait until nothing is left to answer or send; how many replies are stored."""
    db = Database(db_url)
    try:
        await until(lambda: pipeline_settled(db), "every message answered", WAIT, gateway.tail)
        async with db.session() as s:
            return await s.scalar(select(func.count()).select_from(Message).where(Message.direction == Direction.OUT))
    finally:
        await db.dispose()


def turn_worker_pids(supervisor: int, role: str = "turns") -> list[int]:
    """The supervisor's children started as turn processes (RESONANZ_PROCESS_ROLE=turns), or with
    another role."""
    pids = []
    for task in Path(f"/proc/{supervisor}/task").glob("*"):
        for child in (task / "children").read_text().split():
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if f"RESONANZ_PROCESS_ROLE={role}".encode() in environ:
                pids.append(int(child))
    return pids


async def test_the_gateway_only_stores_and_turn_processes_answer_each_message_once(pg_url: str, tmp_path: Path) -> None:
    await require_redis()
    async with serve_engine(ScriptedEngine()) as engine_url, FakeTelegram() as tg:
        gateway = await start(engine_url, tg, pg_url, tmp_path, turn_workers=2)
        try:
            chats = [random.randint(10**8, 10**9) for _ in range(4)]
            for i in range(3):  # three messages per chat, sent without waiting for answers
                await asyncio.gather(*(send(tg, gateway, chat, f"Hallo {i}") for chat in chats))
            assert await answered(pg_url, gateway) == 12
            assert replies(tg, chats) == {chat: 3 for chat in chats}
            # None of the turns ran in the gateway process (its /metrics: loopback needs no token).
            async with aiohttp.ClientSession() as http, http.get(gateway.url + "/metrics") as r:
                metrics = await r.text()
            assert r.status == 200
            assert not re.search(r'^resonanz_turn_seconds_count\{channel="telegram"\} [1-9]', metrics, re.M), metrics
            assert re.search(r'^resonanz_messages_in_total\{channel="telegram"\} 12\.0', metrics, re.M), metrics
            # The turn processes yield the CPU to the acknowledging one (Settings.turn_nice).
            assert gateway.proc is not None
            ours = os.getpriority(os.PRIO_PROCESS, 0)
            [intake] = turn_worker_pids(gateway.proc.pid, "intake")
            assert os.getpriority(os.PRIO_PROCESS, intake) == ours
            assert [os.getpriority(os.PRIO_PROCESS, pid) for pid in turn_worker_pids(gateway.proc.pid)] == [
                min(ours + Settings().turn_nice, 19)] * 2
            # ... and run as batch work (SCHED_BATCH): a waking turn process never preempts an
            # acknowledgement; the intake process keeps the normal policy.
            assert os.sched_getscheduler(intake) == os.SCHED_OTHER
            assert [os.sched_getscheduler(pid) for pid in turn_worker_pids(gateway.proc.pid)] == [os.SCHED_BATCH] * 2
        finally:
            await gateway.kill()


async def test_a_turn_process_killed_while_its_turns_wait_loses_and_doubles_nothing(pg_url: str, tmp_path: Path) -> None:
    await require_redis()
    engine = HeldEngine(expected=4)
    async with serve_engine(engine) as engine_url, FakeTelegram() as tg:
        gateway = await start(engine_url, tg, pg_url, tmp_path, turn_workers=1)
        try:
            assert gateway.proc is not None
            [turn_worker] = turn_worker_pids(gateway.proc.pid)
            chats = [random.randint(10**8, 10**9) for _ in range(4)]
            await asyncio.gather(*(send(tg, gateway, chat, "Hallo") for chat in chats))  # acknowledged
            await asyncio.wait_for(engine.arrived.wait(), WAIT)  # all four turns wait in the engine
            os.kill(turn_worker, signal.SIGKILL)
            engine.gate.set()  # the answers go to a dead process; the new one asks again
            assert await answered(pg_url, gateway) == 4
            assert replies(tg, chats) == {chat: 1 for chat in chats}
            assert turn_worker_pids(gateway.proc.pid) != [turn_worker]  # it was replaced
        finally:
            await gateway.kill()


def test_turn_workers_need_postgresql_and_redis() -> None:
    pg = "postgresql://u@db/resonanz"
    assert "PostgreSQL" in (refusal(Settings(DATABASE_URL="sqlite:///x.db", redis_url="redis://r"), 1, 1) or "")
    assert "RESONANZ_REDIS_URL" in (refusal(Settings(DATABASE_URL=pg), 1, 1) or "")
    assert refusal(Settings(DATABASE_URL=pg, redis_url="redis://r"), 1, -1) is not None
    assert refusal(Settings(DATABASE_URL=pg, redis_url="redis://r"), 1, 2) is None
