"""One stored message, one provider call: what Telegram needs several calls for (a caption longer
than 1024 characters with a picture, several files) is stored as several outbox entries, so a
retry of one part never repeats another, and no file is dropped."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from connectors.base import Attachment, OutboundMessage
from resonanz.app import DISPATCHER, create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, Customer, Message
from tests.conftest import TELEGRAM_SECRET
from connectors.fakes.telegram import FakeTelegram

PICTURE = Attachment(kind="image", url="https://example.org/zaehler.png", mime_type="image/png")
PDF = Attachment(kind="file", url="https://example.org/abschlag.pdf", mime_type="application/pdf", name="abschlag.pdf")


@pytest.fixture
async def telegram(database: Database, tmp_path: Path) -> AsyncIterator[tuple[TestClient, FakeTelegram]]:
    async with FakeTelegram() as tg:
        settings = Settings(
            DATABASE_URL=database.url, engine_url="http://127.0.0.1:9", connectors=("telegram",), var_dir=tmp_path,
            connector_options={"telegram": {"token": tg.token, "secret": TELEGRAM_SECRET, "api_base_url": tg.base_url,
                                            "file_base_url": tg.base_file_url}},
            outbox_backoff_base=0.05, outbox_backoff_max=1.0,
        )
        async with TestClient(TestServer(await create_app(settings, db=database))) as client:
            yield client, tg


async def agent_conversation(db: Database, chat_id: int) -> str:
    async with db.session() as s:
        customer = Customer(name="Erika", language="de")
        s.add(customer)
        await s.flush()
        address = {"channel": "telegram", "recipient": str(chat_id), "extra": {}}
        s.add(ChannelIdentity(customer_id=customer.id, channel="telegram", external_id=str(chat_id), address=address))
        conv = Conversation(customer_id=customer.id, channel="telegram", address=address, state="agent", language="de",
                            slots={}, engine_session=0, engine_turns=0, consecutive_fallbacks=0, fallback_count=0, version=0)
        s.add(conv)
        await s.flush()
        return conv.id


async def stored(db: Database, conversation_id: str) -> list[Message]:
    async with db.session() as s:
        return list((await s.scalars(select(Message).where(Message.conversation_id == conversation_id,
                                                           Message.direction == "out").order_by(Message.id))).all())


async def test_a_long_caption_and_a_rate_limited_picture_send_the_text_once(
    database: Database, telegram: tuple[TestClient, FakeTelegram]
) -> None:
    client, tg = telegram
    chat = random.randint(10**8, 10**9)
    conv_id = await agent_conversation(database, chat)
    text = "Ihr Zählerstand im Detail: " + "x" * 1500
    tg.fail_next("sendPhoto", 429, retry_after=1)
    await client.app[DISPATCHER].emit(conv_id, [OutboundMessage(text=text, author="agent", attachments=(PICTURE,))])
    to_me = lambda p: str(p.get("chat_id")) == str(chat)  # noqa: E731
    refused = await tg.wait_for("sendPhoto", to_me, timeout=15)
    await tg.wait_for("sendPhoto", to_me, timeout=15, since=tg.calls.index(refused) + 1)  # the retry
    rows = await stored(database, conv_id)
    assert [(r.text, [a["url"] for a in r.attachments]) for r in rows] == [(text, []), ("", [PICTURE.url])]
    to_chat = [c.method for c in tg.calls if str(c.params.get("chat_id")) == str(chat)]
    assert to_chat.count("sendMessage") == 1, to_chat  # the 429 on the picture did not resend the text
    assert to_chat.count("sendPhoto") == 2  # refused once, then accepted


async def test_several_files_each_reach_the_customer(database: Database, telegram: tuple[TestClient, FakeTelegram]) -> None:
    client, tg = telegram
    chat = random.randint(10**8, 10**9)
    conv_id = await agent_conversation(database, chat)
    payloads = await client.app[DISPATCHER].emit(
        conv_id, [OutboundMessage(text="Hier beides:", author="agent", attachments=(PICTURE, PDF))])
    assert [p["status"] for p in payloads] == ["sent", "sent", "sent"]
    sent = [c for c in tg.sent if str(c.params.get("chat_id")) == str(chat)]
    assert [c.method for c in sent] == ["sendMessage", "sendPhoto", "sendDocument"]
