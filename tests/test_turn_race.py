"""One inbound message, one turn: a recovering dispatcher and a live one that both picked up the
same message store one set of replies, not two. On PostgreSQL the conversation's advisory lock
(bot/conversation_locks.py) makes the second wait and then find the message answered, without
calling the engine. On SQLite (one process; here two dispatchers stand for a case the product
refuses) both may pass the first check while the engine thinks: the turn's second transaction
re-checks the message under the row lock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import event, func, select

from connectors.base import ChannelAddress, InboundMessage
from resonanz.app import DISPATCHER, ENGINE, ENGINE_READY, create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Conversation, Message
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


async def test_a_message_stored_while_its_conversations_turn_finishes_does_not_wait(pg_url: str, tmp_path: Path) -> None:
    """The turn's second transaction locks the conversation's row against another process
    finishing the same message — FOR NO KEY UPDATE, which the foreign-key check of a new message
    in that conversation (FOR KEY SHARE) does not wait for. A plain FOR UPDATE made the customer's
    next message, and so its webhook's answer, wait until the turn committed."""
    database = Database(pg_url)
    try:
        locks: list[str] = []

        def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
            if " FOR " in sql and "conversations" in sql:
                locks.append(sql[sql.index(" FOR "):].split("\n")[0].strip())

        event.listen(database.engine.sync_engine, "before_cursor_execute", statement)
        async with serve_engine(ScriptedEngine()) as engine_url:
            settings = Settings(DATABASE_URL=pg_url, engine_url=engine_url, connectors=("rest",),
                                var_dir=tmp_path, offer_choice_at_start=False)
            app = await create_app(settings, db=database)
            app[ENGINE_READY].set()
            dispatcher = app[DISPATCHER]
            try:
                first = InboundMessage(channel="rest", sender_id="lock", text="Hallo", address=ChannelAddress("rest", "lock"))
                await dispatcher.handle(first)
            finally:
                await dispatcher.close()
                await app[ENGINE].session.close()
        assert locks == ["FOR NO KEY UPDATE OF conversations"]

        # What that lock lets through, and what FOR UPDATE did not.
        intake = dispatcher.intake
        async with database.session() as s:
            conversation_id = await s.scalar(select(Message.conversation_id).where(Message.sender_id == "lock"))
        for key_share, waits in ((True, False), (False, True)):
            async with database.session() as s:
                await s.execute(select(Conversation.id).where(Conversation.id == conversation_id)
                                .with_for_update(key_share=key_share))
                store = asyncio.ensure_future(intake.store(InboundMessage(
                    channel="rest", sender_id="lock", text="Noch da?", address=ChannelAddress("rest", "lock"))))
                done, _ = await asyncio.wait({store}, timeout=2.0)  # a bound on the wait, not a pause
                assert (not done) == waits
            await store  # the lock is gone: it completes either way
    finally:
        await database.dispose()
