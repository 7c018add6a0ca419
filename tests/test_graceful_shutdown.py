"""SIGTERM to `resonanz run`: a turn in flight is finished and its reply delivered before the process
exits; a turn that does not finish in RESONANZ_SHUTDOWN_SECONDS is cancelled and its message
handed back; web chat sockets and console streams get 1012 "service restart"; the process exits
within the bound."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy import select

from connectors.fakes.telegram import FakeTelegram, text_update
from handover.auth import create_agent, issue_api_token
from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, Message
from resonanz.store.vocabulary import Direction, MessageStatus
from tests.conftest import TELEGRAM_SECRET, free_port
from tests.support.gateway_process import GatewayProcess, gateway_env
from tests.support.scripted_engine import ScriptedEngine, serve_engine
from tests.support.settle import until

BOUND = 4.0  # RESONANZ_SHUTDOWN_SECONDS in this test
# Beyond the bound: closing sockets, aiohttp's handler grace, the cleanup, the interpreter's exit.
EXIT_SLACK = 8.0


class SlowEngine(ScriptedEngine):
    """Answers "re:<text>"; "slow ..." waits for `gate`, "stuck ..." for `release` (the test's end)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.release = asyncio.Event(), asyncio.Event()
        self.slow_entered, self.stuck_entered = asyncio.Event(), asyncio.Event()

    async def turn(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["message"].startswith("slow"):
            self.slow_entered.set()
            await self.gate.wait()
        elif body["message"].startswith("stuck"):
            self.stuck_entered.set()
            await self.release.wait()
        return web.json_response({
            "messages": [{"text": "re:" + body["message"]}],
            "parse_data": {"intent": {"name": "greet", "confidence": 0.97}, "entities": []},
            "slots": dict(body["set_slots"]), "active_loop": None,
        })


def telegram_sends_to(tg: FakeTelegram, chat: int) -> list[str]:
    return [c.params.get("text") for c in tg.sent if str(c.params.get("chat_id")) == str(chat)]


async def test_sigterm_finishes_the_turn_in_flight_and_closes_sockets_within_the_bound(
    database: Database, tmp_path: Path
) -> None:
    engine = SlowEngine()
    async with serve_engine(engine) as engine_url, FakeTelegram() as tg:
        port = free_port()
        env = gateway_env(
            database_url=database.url, engine_url=engine_url, port=port, var_dir=tmp_path / "var",
            connectors=("telegram", "webchat"),
            connector_options={"telegram": {"token": tg.token, "secret": TELEGRAM_SECRET,
                                            "api_base_url": tg.base_url, "file_base_url": tg.base_file_url}},
            shutdown_seconds=BOUND, offer_choice_at_start=False,
        )
        gw = GatewayProcess(env, tmp_path / "gateway.log")
        await gw.start()
        try:
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(gw.url + "/webchat/ws", origin=gw.url)
                await ws.send_json({"type": "hello", "language": "de"})
                assert (await ws.receive_json(timeout=10))["type"] == "session"
                assert (await ws.receive_json(timeout=10))["type"] == "history"

                slow_chat, stuck_chat = random.sample(range(10**8, 10**9), 2)
                update = random.randint(10**6, 10**7)
                hook = gw.url + "/webhooks/telegram/webhook"
                assert (await tg.deliver_update(text_update(update, slow_chat, "slow one"), url=hook,
                                                secret_token=TELEGRAM_SECRET))[0] == 200
                assert (await tg.deliver_update(text_update(update + 1, stuck_chat, "stuck two"), url=hook,
                                                secret_token=TELEGRAM_SECRET))[0] == 200
                await asyncio.wait_for(engine.slow_entered.wait(), 20)
                await asyncio.wait_for(engine.stuck_entered.wait(), 20)

                assert gw.proc is not None
                signalled = time.monotonic()
                gw.proc.send_signal(signal.SIGTERM)
                # Another process: read its log until it says it drains, then let the slow turn end.
                await until(lambda: '"shutdown.draining"' in gw.tail(20000), "the gateway drains", 10, gw.tail)
                engine.gate.set()

                closing = await ws.receive(timeout=BOUND + EXIT_SLACK)
                assert closing.type == WSMsgType.CLOSE, closing
                assert closing.data == WSCloseCode.SERVICE_RESTART
                assert closing.extra == "service restart"
                returncode = await asyncio.wait_for(gw.proc.wait(), BOUND + EXIT_SLACK)
                took = time.monotonic() - signalled
            assert returncode == 0, gw.tail()
            assert BOUND <= took <= BOUND + EXIT_SLACK, (took, gw.tail())
            # Sent by the gateway before it exited (the fake provider lives in this process).
            assert telegram_sends_to(tg, slow_chat) == ["re:slow one"]
            assert telegram_sends_to(tg, stuck_chat) == []
            assert '"shutdown.turns_unfinished"' in gw.tail(20000)
            async with database.session() as s:
                stuck = await s.scalar(select(Message).where(Message.direction == Direction.IN,
                                                             Message.text == "stuck two"))
                slow = await s.scalar(select(Message).where(Message.direction == Direction.IN,
                                                            Message.text == "slow one"))
            assert slow.status == MessageStatus.PROCESSED
            # Handed back: the next process answers it at once, without waiting for the lease.
            assert stuck.status == MessageStatus.RECEIVED and stuck.lease_owner is None
        finally:
            engine.gate.set()
            engine.release.set()
            await gw.kill()


async def test_a_stop_closes_console_streams_and_unintroduced_chat_sockets_with_1012(
    database: Database, tmp_path: Path
) -> None:
    async with serve_engine(ScriptedEngine()) as engine_url:
        settings = Settings(DATABASE_URL=database.url, engine_url=engine_url, connectors=("rest", "webchat"),
                            var_dir=tmp_path, shutdown_seconds=BOUND)
        app = await create_app(settings, db=database)
        await create_agent(database, email="stop@example.org", password="correct horse battery",
                           display_name="Stop Agent", role="agent", skills=("general",), languages=("de",))
        async with database.session() as s:
            agent_id = await s.scalar(select(Agent.id).where(Agent.email == "stop@example.org"))
        token = await issue_api_token(database, agent_id)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{port}"
        stopping: asyncio.Future[None] | None = None
        try:
            async with aiohttp.ClientSession() as http:
                console = await http.ws_connect(url + "/api/v1/stream", headers={"Authorization": f"Bearer {token}"})
                chat = await http.ws_connect(url + "/webchat/ws", origin=url)  # no hello yet
                stopping = asyncio.ensure_future(runner.cleanup())
                for ws in (console, chat):
                    msg = await ws.receive(timeout=BOUND + EXIT_SLACK)
                    assert msg.type == WSMsgType.CLOSE and msg.data == WSCloseCode.SERVICE_RESTART, msg
                    assert msg.extra == "service restart"
                await asyncio.wait_for(stopping, BOUND + EXIT_SLACK)
        finally:
            if stopping is None:
                await runner.cleanup()


async def test_a_second_signal_stops_at_once_and_hands_the_turn_back(database: Database, tmp_path: Path) -> None:
    engine = SlowEngine()
    async with serve_engine(engine) as engine_url, FakeTelegram() as tg:
        env = gateway_env(
            database_url=database.url, engine_url=engine_url, port=free_port(), var_dir=tmp_path / "var",
            connectors=("telegram",),
            connector_options={"telegram": {"token": tg.token, "secret": TELEGRAM_SECRET,
                                            "api_base_url": tg.base_url, "file_base_url": tg.base_file_url}},
            shutdown_seconds=120, offer_choice_at_start=False,
        )
        gw = GatewayProcess(env, tmp_path / "gateway.log")
        await gw.start()
        try:
            chat = random.randint(10**8, 10**9)
            assert (await tg.deliver_update(text_update(random.randint(10**6, 10**7), chat, "stuck one"),
                                            url=gw.url + "/webhooks/telegram/webhook",
                                            secret_token=TELEGRAM_SECRET))[0] == 200
            await asyncio.wait_for(engine.stuck_entered.wait(), 20)
            assert gw.proc is not None
            gw.proc.send_signal(signal.SIGINT)
            await until(lambda: '"shutdown.draining"' in gw.tail(20000), "the gateway drains", 10, gw.tail)
            signalled = time.monotonic()
            gw.proc.send_signal(signal.SIGINT)  # Ctrl-C again: do not wait for the turn
            assert await asyncio.wait_for(gw.proc.wait(), EXIT_SLACK) == 0, gw.tail()
            assert time.monotonic() - signalled < EXIT_SLACK
            async with database.session() as s:
                stuck = await s.scalar(select(Message).where(Message.direction == Direction.IN))
            assert stuck.status == MessageStatus.RECEIVED and stuck.lease_owner is None
        finally:
            engine.release.set()
            await gw.kill()
