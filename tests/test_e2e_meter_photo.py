"""Meter reading from a photo, end to end on Telegram and the web chat: the real gateway, the real
trained engine, the fake Bot API driven by the real python-telegram-bot, the web chat's socket and
upload. The customer sends a photo at the reading step, the bot proposes what it read with yes/no buttons, "yes" stores the reading with
the photo."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Callable
from datetime import timedelta

import aiohttp
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


async def test_webchat_meter_reading_from_an_uploaded_photo_confirmed_with_a_button(live_gateway: LiveGateway) -> None:
    """The same on the web chat: the photo comes through POST /webchat/upload (as the widget sends
    it), the proposal arrives on the socket with its two buttons, pressing "yes" stores it."""
    gw = live_gateway
    number = "4" + str(random.randint(1_000_000, 9_999_999))
    meter = "1ESY11" + secrets.token_hex(4).upper()[:4] + "5432"
    async with gw.db.session() as s:
        s.add(Account(customer_number=number, name="Paul Upload", postcode="10115", meter_number=meter,
                      last_reading=12_000, last_reading_at=utcnow() - timedelta(days=60), yearly_consumption=3000,
                      monthly_instalment=80.0, instalment_min=50.0, instalment_max=150.0))
    async with aiohttp.ClientSession() as http, http.ws_connect(gw.url + "/webchat/ws", origin=gw.url) as ws:
        await ws.send_json({"type": "hello", "language": "de"})
        token = (await ws.receive_json(timeout=10))["token"]
        assert (await ws.receive_json(timeout=10))["type"] == "history"
        sent: list[str] = []  # the pictures' addresses, as the socket shows them to the customer

        async def bot_says(until: Callable[[dict], bool]) -> list[dict]:
            """The bot's messages on the socket up to the first one `until` accepts."""
            said: list[dict] = []
            seen: list[dict] = []
            try:
                async with asyncio.timeout(60):
                    while not said or not until(said[-1]):
                        seen.append(await ws.receive_json())
                        assert seen[-1]["type"] != "error", seen
                        if seen[-1]["type"] == "message" and seen[-1]["author"] == "customer":
                            sent.extend(a["url"] for a in seen[-1]["attachments"])
                        if seen[-1]["type"] == "message" and seen[-1]["author"] == "bot":
                            said.append(seen[-1])
            except TimeoutError:
                raise AssertionError(seen) from None
            return said

        async def say(text: str, until: Callable[[dict], bool], display: str | None = None) -> str:
            await ws.send_json({"type": "message", "text": text, "client_id": f"c{new_id()}",
                                **({"display": display} if display else {})})
            return " ".join(f["text"] for f in await bot_says(until))

        assert "Kundennummer" in await say("Ich möchte meinen Zählerstand melden", lambda f: "Kundennummer" in f["text"])
        assert "Zählernummer" in await say(number, lambda f: "Zählernummer" in f["text"])
        assert "Zählerstand" in await say("5432", lambda f: "Zählerstand" in f["text"])
        # Instead of typing it, the photo of the roller counter (012650 and a red tenths wheel).
        upload = aiohttp.FormData()
        upload.add_field("client_id", f"c{new_id()}")
        upload.add_field("file", roller_meter(random.Random(3), 12650).jpeg, filename="zaehler.jpg",
                         content_type="image/jpeg")
        async with http.post(gw.url + "/webchat/upload", data=upload,
                             headers={"Authorization": f"Bearer {token}", "Origin": gw.url}) as r:
            assert r.status == 201, await r.text()
        proposal = (await bot_says(lambda f: bool(f["buttons"])))[-1]
        assert "12.650 kWh" in proposal["text"] and "stimmt das" in proposal["text"]
        buttons = {b["title"]: b["payload"] for b in proposal["buttons"]}
        assert set(buttons) == {"Ja, stimmt", "Nein"}
        async with gw.db.session() as s:
            assert (await s.scalars(select(MeterReading).where(MeterReading.customer_number == number))).all() == []
        saved = await say(buttons["Ja, stimmt"], lambda f: "gespeichert" in f["text"], display="Ja, stimmt")
        assert "12.650 kWh" in saved
    async with gw.db.session() as s:
        [reading] = (await s.scalars(select(MeterReading).where(MeterReading.customer_number == number))).all()
    [photo] = sent
    assert reading.value == 12650 and "/media/in-" in photo
    assert reading.photo_url == photo  # kept with the reading, for the agent and disputes
