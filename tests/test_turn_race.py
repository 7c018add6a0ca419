"""One inbound message, one turn: a recovering dispatcher and a live one that both picked up the
same message store one set of replies, not two. On PostgreSQL the conversation's advisory lock
(bot/conversation_locks.py) makes the second wait and then find the message answered, without
calling the engine. On SQLite (one process; here two dispatchers stand for a case the product
refuses) both may pass the first check while the engine thinks: the turn's second transaction
re-checks the message under the row lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, select

from connectors.base import ChannelAddress, InboundMessage
from resonanz.app import DISPATCHER, ENGINE, ENGINE_READY, create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Message
from tests.support.scripted_engine import ScriptedEngine, serve_engine


class TwoAtOnceEngine(ScriptedEngine):
    """Answers only once two turns are in flight: both dispatchers are past their first check."""

    def __init__(self) -> None:
        super().__init__()
        self.both_in = asyncio.Event()
        self.entered = 0

    async def turn(self, request: web.Request) -> web.Response:
        self.entered += 1
        if self.entered >= 2:
            self.both_in.set()
        await self.both_in.wait()
        return await super().turn(request)


async def test_two_dispatchers_racing_for_one_message_store_one_turn(database: Database, tmp_path: Path) -> None:
    # SQLite: the engine answers only once both turns are in it (both passed the first check).
    engine = TwoAtOnceEngine() if database.is_sqlite else ScriptedEngine()
    async with serve_engine(engine) as engine_url:
        settings = Settings(DATABASE_URL=database.url, engine_url=engine_url, connectors=("rest",),
                            var_dir=tmp_path, offer_choice_at_start=False)
        live, recovering = await create_app(settings, db=database), await create_app(settings, db=database)
        for app in (live, recovering):
            app[ENGINE_READY].set()
        dispatcher = live[DISPATCHER]
        inbound = InboundMessage(channel="rest", sender_id="race", text="Hallo",
                                 address=ChannelAddress("rest", "race"), provider_message_id=None)
        pk, conversation_id, public_id, _ = await dispatcher.intake.store(inbound)
        results = await asyncio.wait_for(asyncio.gather(
            dispatcher.process(conversation_id, pk, public_id),
            recovering[DISPATCHER].process(conversation_id, pk, public_id),
        ), 20)
        for app in (live, recovering):  # never started: close what create_app opened
            await app[DISPATCHER].close()
            await app[ENGINE].session.close()
    # SQLite: both really ran the engine for it; PostgreSQL: the lock let only one turn run.
    assert len(engine.turns) == (2 if database.is_sqlite else 1)
    async with database.session() as s:
        stored = await s.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == conversation_id, Message.direction == "out"))
    assert stored == 1, f"{stored} replies stored for one message"
    assert sorted(len(r.replies) for r in results) == [0, 1]
