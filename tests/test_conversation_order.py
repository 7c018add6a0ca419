"""Per-conversation order across gateway processes on one PostgreSQL database.

Two gateways (each its own app and connection pool, as two processes would have) get the two
messages of one customer that arrive in quick succession, one on each: the second's engine call
must not start before the first's has finished, and the replies reach the customer in order.
A turn woken for a later message answers the conversation's older unanswered ones first."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select, text

from bot.conversation_locks import advisory_key
from connectors.base import ChannelAddress, InboundMessage
from connectors.fakes.telegram import FakeTelegram, text_update
from connectors.fakes.twilio import FakeTwilio
from resonanz.app import DISPATCHER, ENGINE, ENGINE_READY, create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Message
from resonanz.store.vocabulary import Direction, MessageStatus
from tests.conftest import TELEGRAM_SECRET
from tests.support.push import push_gateway
from tests.support.scripted_engine import ScriptedEngine, serve_engine
from tests.support.settle import until

WAIT = 20.0


class OrderEngine(ScriptedEngine):
    """Answers "re:<text>" and records when each call starts and ends; a text with a gate in
    `gates` is held until the test opens it."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, str]] = []
        self.active = 0
        self.overlapped: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}

    async def turn(self, request: web.Request) -> web.Response:
        body = await request.json()
        message = body["message"]
        self.log.append(("start", message))
        self.active += 1
        if self.active > 1:
            self.overlapped.append(message)
        try:
            if message in self.gates:
                await self.gates[message].wait()
        finally:
            self.active -= 1
            self.log.append(("end", message))
        return web.json_response({
            "messages": [{"text": "re:" + message}],
            "parse_data": {"intent": {"name": "greet", "confidence": 0.97}, "entities": []},
            "slots": dict(body["set_slots"]), "active_loop": None,
        })



async def advisory_waiters(db: Database) -> int:
    """Sessions waiting for an advisory lock (a turn queued behind another process's turn)."""
    async with db.session() as s:
        return int(await s.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")))


async def test_two_gateways_answer_one_conversation_in_order(pg_url: str, tmp_path: Path) -> None:
    engine = OrderEngine()
    engine.gates["first"] = asyncio.Event()
    db_a, db_b = Database(pg_url), Database(pg_url)
    chat = random.randint(10**8, 10**9)
    try:
        async with serve_engine(engine) as engine_url, FakeTelegram() as tg, FakeTwilio() as tw, \
                push_gateway(db_a, tmp_path / "a", engine_url, engine, tg, tw) as a, \
                push_gateway(db_b, tmp_path / "b", engine_url, engine, tg, tw) as b:
            for gw in (a, b):
                await asyncio.wait_for(gw.app[ENGINE_READY].wait(), WAIT)

            async def send(url: str, update_id: int, words: str) -> None:
                status, body = await tg.deliver_update(text_update(update_id, chat, words),
                                                       url=url + "/webhooks/telegram/webhook",
                                                       secret_token=TELEGRAM_SECRET)
                assert status == 200, body

            await send(a.url, 1, "first")
            await until(lambda: ("start", "first") in engine.log, "the first turn reached the engine", WAIT)
            await send(b.url, 2, "second")
            # Either gateway B's turn runs the engine at once (the bug), or it waits for A's.
            await until(lambda: _second_started_or_waits(engine, db_a), "B's turn started or queued", WAIT)
            engine.gates["first"].set()
            await until(lambda: len(_replies(tg, chat)) >= 2, "both replies sent", WAIT,
                        lambda: f"sent: {_replies(tg, chat)}; engine: {engine.log}")
            for gw in (a, b):
                await gw.app[DISPATCHER].settled()
        assert engine.overlapped == [], f"engine calls of one conversation overlapped: {engine.log}"
        assert engine.log == [("start", "first"), ("end", "first"), ("start", "second"), ("end", "second")]
        assert _replies(tg, chat) == ["re:first", "re:second"]
    finally:
        await db_a.dispose()
        await db_b.dispose()


async def _second_started_or_waits(engine: OrderEngine, db: Database) -> bool:
    return ("start", "second") in engine.log or await advisory_waiters(db) > 0


def _replies(tg: FakeTelegram, chat: int) -> list[str]:
    return [str(c.params.get("text")) for c in tg.sent if c.params.get("chat_id") == chat]


async def test_a_turn_answers_the_older_waiting_messages_of_its_conversation_first(pg_url: str, tmp_path: Path) -> None:
    """Gateway A stored "first" but its turn has not run yet; gateway B, woken for "second",
    answers "first" before "second"; A's turn later finds nothing left to do."""
    engine = OrderEngine()
    db_a, db_b = Database(pg_url), Database(pg_url)
    try:
        async with serve_engine(engine) as engine_url:
            settings = Settings(DATABASE_URL=pg_url, engine_url=engine_url, connectors=("rest",),
                                var_dir=tmp_path, offer_choice_at_start=False)
            a, b = await create_app(settings, db=db_a), await create_app(settings, db=db_b)
            for app in (a, b):
                app[ENGINE_READY].set()

            def inbound(words: str) -> InboundMessage:
                return InboundMessage(channel="rest", sender_id="order", text=words,
                                      address=ChannelAddress("rest", "order"), provider_message_id=None)

            first = await a[DISPATCHER].intake.store(inbound("first"))
            second = await b[DISPATCHER].intake.store(inbound("second"))
            assert first[1] == second[1]  # one conversation
            late = await b[DISPATCHER].process(second[1], second[0], second[2])
            early = await a[DISPATCHER].process(first[1], first[0], first[2])
            for app in (a, b):
                await app[DISPATCHER].close()
                await app[ENGINE].session.close()
        assert [m for kind, m in engine.log if kind == "start"] == ["first", "second"]
        assert [r.text for r in late.replies] == ["re:second"] and early.replies == ()
        async with db_a.session() as s:
            rows = (await s.execute(select(Message.direction, Message.text, Message.status)
                                    .where(Message.conversation_id == first[1]).order_by(Message.id))).all()
        assert [(d, t) for d, t, _ in rows] == [(Direction.IN, "first"), (Direction.IN, "second"),
                                                (Direction.OUT, "re:first"), (Direction.OUT, "re:second")]
        assert all(st == MessageStatus.PROCESSED for d, _, st in rows if d == Direction.IN)
    finally:
        await db_a.dispose()
        await db_b.dispose()


def test_advisory_key_is_a_stable_signed_64_bit_number() -> None:
    key = advisory_key("c0ffee")
    assert key == advisory_key("c0ffee") != advisory_key("c0ffef")
    assert -(2**63) <= key < 2**63
