"""Push channels (Telegram, Twilio) answer their webhook as soon as the message is stored; the
turn runs afterwards. A slow engine no longer makes the provider wait (Twilio gives a webhook 15 s,
and both resend on a slow answer), and the replies still arrive, in order."""

from __future__ import annotations

import asyncio
import random

from sqlalchemy import select

from connectors.fakes.telegram import text_update
from resonanz.app import DISPATCHER
from resonanz.store import Database
from resonanz.store.models import Message
from tests.conftest import TELEGRAM_SECRET
from tests.support.push import World, world  # noqa: F401 - the fixture


async def _status_of(db: Database, provider_id: str) -> str | None:
    async with db.session() as s:
        return await s.scalar(select(Message.status).where(Message.provider_message_id == provider_id))


async def test_telegram_is_acknowledged_once_stored_and_answered_after(world: World, database: Database) -> None:
    chat, update_id = random.randint(10**8, 10**9), random.randint(10**6, 10**7)
    status, _ = await world.tg.deliver_update(text_update(update_id, chat, "Hallo"), url=world.url + "/webhooks/telegram/webhook",
                                              secret_token=TELEGRAM_SECRET)
    assert status == 200
    await asyncio.wait_for(world.engine.entered.wait(), 10)  # the turn runs: the engine is thinking
    assert await _status_of(database, f"update:{update_id}") == "received"  # stored before the answer
    assert not [c for c in world.tg.sent if c.params.get("chat_id") == chat]  # no reply yet
    world.engine.gate.set()
    reply = await world.tg.wait_for("sendMessage", lambda p: p.get("chat_id") == chat, timeout=10)
    assert reply.params["text"] == "bot:greet"
    await world.app[DISPATCHER].settled()
    assert await _status_of(database, f"update:{update_id}") == "processed"


async def test_sms_is_acknowledged_once_stored_and_replies_keep_their_order(world: World, database: Database) -> None:
    phone = "+49170" + "".join(random.choices("0123456789", k=7))
    first = world.tw.sms_params(phone, "Hallo")
    status, _ = await world.tw.post_webhook(world.url + "/webhooks/sms/webhook", first)
    assert status == 200
    await asyncio.wait_for(world.engine.entered.wait(), 10)
    second = world.tw.sms_params(phone, "Mensch bitte")  # arrives while the first turn still runs
    status, _ = await world.tw.post_webhook(world.url + "/webhooks/sms/webhook", second)
    assert status == 200
    assert await _status_of(database, second["MessageSid"]) == "received"
    world.engine.gate.set()
    await world.app[DISPATCHER].settled()
    bodies = [m["Body"] for m in world.tw.messages if m["To"] == phone]
    assert bodies[0] == "bot:greet" and len(bodies) >= 2  # the first turn's reply first, then the handover's
    assert [t["message"] for t in world.engine.turns if t["message"] in ("Hallo", "Mensch bitte")] == ["Hallo", "Mensch bitte"]
