"""The engine process killed while an acknowledged turn waits on it: the customer gets the
apology through the provider and is queued for a person; nothing is lost or sent twice.
(tests/test_e2e_engine_failure.py covers a real engine that starts late and dies between turns.)"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from sqlalchemy import select

from connectors.fakes.telegram import FakeTelegram, text_update
from connectors.fakes.twilio import FakeTwilio
from handover.state import State
from resonanz.store import Database
from resonanz.store.models import Conversation, Handover, Message
from resonanz.store.vocabulary import Direction, HandoverStatus, MessageStatus
from tests.conftest import TELEGRAM_SECRET
from tests.support.push import HeldEngine, push_gateway
from tests.support.settle import pipeline_settled, until

WAIT = 15.0


@pytest_asyncio.fixture(loop_scope="session")
async def stuck_engine() -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """tests/support/scripted_engine.py as its own process: it takes turns and never answers."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.support.scripted_engine",
                                                stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), WAIT)).decode().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_engine_killed_mid_turn_apologises_and_queues_with_nothing_lost(
    stuck_engine: tuple[asyncio.subprocess.Process, str], database: Database, tmp_path: Path
) -> None:
    proc, engine_url = stuck_engine
    chat = random.randint(10**8, 10**9)
    async with FakeTelegram() as tg, FakeTwilio() as tw, \
            push_gateway(database, tmp_path, engine_url, HeldEngine(), tg, tw) as gw:
        status, _ = await tg.deliver_update(text_update(random.randint(10**6, 10**7), chat, "Hallo"),
                                            url=gw.url + "/webhooks/telegram/webhook", secret_token=TELEGRAM_SECRET)
        assert status == 200
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), WAIT)).decode().strip() == "turn"
        proc.kill()  # SIGKILL while the turn waits for its answer
        await proc.wait()

        apology = await tg.wait_for("sendMessage", lambda p: p.get("chat_id") == chat, timeout=WAIT)
        assert "Entschuldigung" in apology.params["text"]

        await until(lambda: pipeline_settled(database), "the turn finished and its replies sent", WAIT)
        async with database.session() as s:
            [inbound] = (await s.scalars(select(Message).where(Message.direction == Direction.IN))).all()
            assert (inbound.text, inbound.status) == ("Hallo", MessageStatus.PROCESSED)
            assert (inbound.parse_data or {}).get("error") == "engine_unreachable"
            conversation = await s.get(Conversation, inbound.conversation_id)
            assert conversation is not None and conversation.state == State.QUEUED
            handover = await s.scalar(select(Handover).where(Handover.conversation_id == conversation.id))
            assert handover is not None and handover.status in HandoverStatus.open()
            outbound = (await s.scalars(select(Message.text).where(
                Message.conversation_id == conversation.id, Message.direction == Direction.OUT))).all()
        # Every stored reply reached the customer exactly once, the apology first.
        sent = [str(c.params.get("text")) for c in tg.sent if c.params.get("chat_id") == chat]
        assert sorted(sent) == sorted(outbound) and sent[0] == apology.params["text"]

