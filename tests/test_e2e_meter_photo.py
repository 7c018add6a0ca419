"""Meter reading from a photo, end to end on Telegram: the real gateway, the real trained engine,
the fake Bot API driven by the real python-telegram-bot. The customer sends a photo at the
reading step, the bot proposes what it read with yes/no buttons, "yes" stores the reading with
the photo."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select

from bench.meter_images import roller_meter
from bot.reference.models import Account, MeterReading
from connectors.fakes.telegram import FakeTelegram, callback_update, photo_update, text_update
from resonanz.store.models import Message, utcnow
from tests.conftest import LiveGateway
from tests.support.channels import conversation_of, new_id, tg_send, tg_texts

pytestmark = pytest.mark.engine


async def test_telegram_meter_reading_from_a_photo_confirmed_with_a_button(
    live_gateway: LiveGateway, fake_telegram: FakeTelegram
) -> None:
    gw, tg, chat = live_gateway, fake_telegram, new_id()
    # An account of its own (the suite's demo accounts change as other tests submit readings).
    number = "4" + str(random.randint(1_000_000, 9_999_999))
    meter = "1ESY11" + secrets.token_hex(4).upper()[:4] + "9876"
    async with gw.db.session() as s:
        s.add(Account(customer_number=number, name="Petra Foto", postcode="10115", meter_number=meter,
                      last_reading=12_000, last_reading_at=utcnow() - timedelta(days=60), yearly_consumption=3000,
                      monthly_instalment=80.0, instalment_min=50.0, instalment_max=150.0))
    since = len(tg.calls)
    assert await tg_send(gw, tg, text_update(new_id(), chat, "Ich möchte meinen Zählerstand melden")) == 200
    assert "Kundennummer" in tg_texts(tg, chat, since)
    since = len(tg.calls)
    assert await tg_send(gw, tg, text_update(new_id(), chat, number)) == 200
    assert "Zählernummer" in tg_texts(tg, chat, since)
    since = len(tg.calls)
    assert await tg_send(gw, tg, text_update(new_id(), chat, "9876")) == 200
    assert "Zählerstand" in tg_texts(tg, chat, since)
    # Instead of typing it, a photo of the roller counter (012650 and a red tenths wheel).
    tg.add_file("meter-12650", roller_meter(random.Random(3), 12650).jpeg, "photos/meter-12650.jpg")
    since = len(tg.calls)
    assert await tg_send(gw, tg, photo_update(new_id(), chat, "meter-12650")) == 200
    proposal = await tg.wait_for("sendMessage", lambda p: p.get("chat_id") == chat and p.get("reply_markup"), since=since)
    assert "12.650 kWh" in proposal.params["text"] and "stimmt das" in proposal.params["text"]
    buttons = {b["text"]: b["callback_data"] for row in proposal.params["reply_markup"]["inline_keyboard"] for b in row}
    assert set(buttons) == {"Ja, stimmt", "Nein"}
    async with gw.db.session() as s:
        assert (await s.scalars(select(MeterReading).where(MeterReading.customer_number == number))).all() == []
    since = len(tg.calls)
    assert await tg_send(gw, tg, callback_update(new_id(), chat, buttons["Ja, stimmt"], 1)) == 200
    assert "12.650 kWh" in tg_texts(tg, chat, since) and "gespeichert" in tg_texts(tg, chat, since)
    conv = await conversation_of(gw, "telegram", str(chat))
    async with gw.db.session() as s:
        [reading] = (await s.scalars(select(MeterReading).where(MeterReading.customer_number == number))).all()
        photo = await s.scalar(select(Message).where(Message.conversation_id == conv.id, Message.text == "[photo]"))
    assert reading.value == 12650 and photo is not None
    assert reading.photo_url == photo.attachments[0]["url"]  # kept with the reading, for the agent and disputes


async def test_telegram_a_photo_read_wrongly_asks_to_type_it_and_offers_a_person(
    live_gateway: LiveGateway, fake_telegram: FakeTelegram
) -> None:
    gw, tg, chat = live_gateway, fake_telegram, new_id()
    # A photo as the first message, before any reading step.
    tg.add_file("meter-48324", roller_meter(random.Random(3), 48324).jpeg, "photos/meter-48324.jpg")
    since = len(tg.calls)
    assert await tg_send(gw, tg, photo_update(new_id(), chat, "meter-48324", language_code="en")) == 200
    sent = [str(c.params.get("text")) for c in tg.calls[since:] if c.method == "sendMessage" and c.params.get("chat_id") == chat]
    proposal = next((c for c in tg.calls[since:] if c.method == "sendMessage" and c.params.get("chat_id") == chat
                     and "48,324 kWh" in str(c.params.get("text"))), None)
    assert proposal is not None, sent
    buttons = {b["text"]: b["callback_data"] for row in proposal.params["reply_markup"]["inline_keyboard"] for b in row}
    since = len(tg.calls)
    assert await tg_send(gw, tg, callback_update(new_id(), chat, buttons["No"], 1)) == 200
    answer = await tg.wait_for("sendMessage", lambda p: p.get("chat_id") == chat and p.get("reply_markup"), since=since)
    assert "type the meter reading" in answer.params["text"]
    offered = [b["text"] for row in answer.params["reply_markup"]["inline_keyboard"] for b in row]
    assert "Talk to a person" in offered
