"""One transient database error at each background step, and the work still completes: the
acknowledged turn, the recovery of acknowledged messages at start-up (the engine watch), and the
offer sweeper. The error is raised at the database boundary (tests/support/db_faults.py), not by
replacing the component under test; the outbox's retry is covered in tests/test_outbox.py."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from connectors.fakes.telegram import FakeTelegram, text_update
from connectors.fakes.twilio import FakeTwilio
from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Handover, Message
from resonanz.store.vocabulary import Direction, HandoverStatus, MessageStatus
from tests.conftest import TELEGRAM_SECRET
from tests.support.db_faults import database_fault, touches
from tests.support.desk import Desk
from tests.support.push import HeldEngine, World, push_gateway, world  # noqa: F401 - the fixture
from tests.support.scripted_engine import ScriptedEngine, serve_engine
from tests.support.settle import pipeline_settled, until

WAIT = 15.0


@pytest_asyncio.fixture(loop_scope="session")
async def observer(database: Database) -> AsyncIterator[Database]:
    """The test's own connection pool: its reads are not the gateway's, so no fault hits them."""
    db = Database(database.url)
    yield db
    await db.dispose()


async def test_the_acknowledged_turn_survives_a_database_error_and_answers_once(world: World, database: Database, observer: Database) -> None:
    chat = random.randint(10**8, 10**9)
    status, _ = await world.tg.deliver_update(text_update(random.randint(10**6, 10**7), chat, "Hallo"),
                                              url=world.url + "/webhooks/telegram/webhook", secret_token=TELEGRAM_SECRET)
    assert status == 200
    await asyncio.wait_for(world.engine.entered.wait(), WAIT)
    # The engine answered; storing the turn's reply fails once.
    with database_fault(database, touches("messages", "INSERT")) as fault:
        world.engine.gate.set()
        await world.tg.wait_for("sendMessage", lambda p: p.get("chat_id") == chat, timeout=WAIT)
        await until(lambda: pipeline_settled(observer), "the turn finished and its reply sent", WAIT)
    assert len(fault.failed) == 1
    assert [c.params["text"] for c in world.tg.sent if c.params.get("chat_id") == chat] == ["bot:greet"]


async def test_recovery_at_start_up_survives_a_database_error(database: Database, observer: Database, tmp_path: Path) -> None:
    engine = HeldEngine()
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    async with serve_engine(engine) as engine_url, FakeTelegram() as tg, FakeTwilio() as tw:
        # A gateway acknowledges a message and stops before its turn is done (a graceful stop
        # gives up on the turn after shutdown_seconds).
        async with push_gateway(database, tmp_path, engine_url, engine, tg, tw, shutdown_seconds=0.1) as first:
            status, _ = await tw.post_webhook(first.url + "/webhooks/sms/webhook", tw.sms_params(phone, "Hallo"))
            assert status == 200
            await asyncio.wait_for(engine.entered.wait(), WAIT)
        async with database.session() as s:
            assert await s.scalar(select(Message.status).where(Message.direction == Direction.IN)) != MessageStatus.PROCESSED
        engine.gate.set()
        # The next start finds it (the engine watch, then recovery); its first read of the
        # acknowledged-but-unfinished messages fails.
        with database_fault(database, touches("messages", "SELECT", "UPDATE", values=[MessageStatus.RECEIVED])) as fault:
            async with push_gateway(database, tmp_path, engine_url, engine, tg, tw):
                await tw.wait_for_message(lambda m: m["To"] == phone, timeout=WAIT)
                await until(lambda: pipeline_settled(observer), "the recovered turn finished and its reply sent", WAIT)
        assert len(fault.failed) == 1
        assert [m["Body"] for m in tw.messages if m["To"] == phone] == ["bot:greet"]


async def test_offer_sweeper_expires_and_reoffers_despite_a_database_error(database: Database, observer: Database, tmp_path: Path) -> None:
    engine = ScriptedEngine()
    async with serve_engine(engine) as engine_url:
        settings = Settings(DATABASE_URL=database.url, engine_url=engine_url, connectors=("rest",), var_dir=tmp_path,
                            offer_timeout=1)
        async with TestClient(TestServer(await create_app(settings, db=database))) as client:
            desk = Desk(client, database, engine)
            agents = {(await desk.agent(f"agent{i}@x.de"))["id"] for i in range(2)}
            r = await desk.customer("sweep-" + str(random.randint(10**6, 10**7)), "Mensch bitte")
            h = await desk.handover_of(r["conversation_id"])
            assert h.status == HandoverStatus.OFFERED and h.offered_agent_id in agents
            first, (second,) = h.offered_agent_id, agents - {h.offered_agent_id}
            # The sweeper's next database call fails; the offer still expires and moves on.
            with database_fault(database, touches("handovers", "SELECT", "UPDATE")) as fault:

                async def moved_on() -> bool:
                    async with observer.session() as s:
                        now = await s.get(Handover, h.id)
                    return (now.declined_by or [])[:1] == [first] and (
                        now.offered_agent_id == second or second in (now.declined_by or []))

                await until(moved_on, "the offer expired and went to the other agent", WAIT)
            assert len(fault.failed) == 1
