"""End to end through the REST channel, against the real trained Rasa engine.

Every test runs on SQLite and on PostgreSQL (the `live_gateway` fixture is parametrised).
Assertions check what was stored (readings, states, events), not only what was said.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.reference.demo_data import demo_account
from bot.reference.models import Account, MeterReading
from resonanz.store.models import Conversation, ConversationEvent, Message
from tests.conftest import LiveGateway

pytestmark = pytest.mark.engine


def texts(reply: dict) -> str:
    return "\n".join(m["text"] for m in reply["messages"])


async def readings(gw: LiveGateway, number: str) -> list[int]:
    async with gw.db.session() as s:
        return list((await s.scalars(select(MeterReading.value).where(MeterReading.customer_number == number))).all())


async def last_reading(gw: LiveGateway, number: str) -> int:
    async with gw.db.session() as s:
        return (await s.get(Account, number)).last_reading


# Accounts are shared by the tests of a session: each test reads the current state first.


async def test_meter_reading_in_german(live_gateway: LiveGateway, sender: str) -> None:
    acc = demo_account("40012345")
    before = await readings(live_gateway, acc.customer_number)
    last = await last_reading(live_gateway, acc.customer_number)
    r = await live_gateway.post(sender, "Hallo, ich möchte meinen Zählerstand melden")
    assert r["state"] == "bot"
    assert "Kundennummer" in texts(r)
    r = await live_gateway.post(sender, acc.customer_number)
    assert "letzten 4 Ziffern Ihrer Zählernummer" in texts(r)  # step-up verification first
    r = await live_gateway.post(sender, acc.meter_number[-4:])
    assert "Zählerstand" in texts(r)
    new = last + 400
    r = await live_gateway.post(sender, f"{new} kWh")
    assert str(new) in texts(r).replace(".", "")
    assert "danke" in texts(r).lower() or "gespeichert" in texts(r).lower()
    assert await readings(live_gateway, acc.customer_number) == [*before, new]
    assert await last_reading(live_gateway, acc.customer_number) == new
    # The stored turn carries what the engine understood.
    async with live_gateway.db.session() as s:
        conv = await s.get(Conversation, r["conversation_id"])
        assert conv.slots["customer_number"] == acc.customer_number
        first = await s.scalar(select(Message).where(Message.conversation_id == conv.id).order_by(Message.id))
        assert first.parse_data["intent"] == "submit_meter_reading"


async def test_meter_reading_in_english_both_values_in_one_message(live_gateway: LiveGateway, sender: str) -> None:
    acc = demo_account("40023456")
    before = await readings(live_gateway, acc.customer_number)
    r = await live_gateway.post(sender, "Hi, I would like to submit my meter reading")
    assert "customer number" in texts(r).lower()
    new = await last_reading(live_gateway, acc.customer_number) + 700
    r = await live_gateway.post(sender, f"my customer number is {acc.customer_number} and the reading is {new}")
    assert "last 4 digits of your meter number" in texts(r)
    assert await readings(live_gateway, acc.customer_number) == before  # nothing stored unverified
    r = await live_gateway.post(sender, acc.meter_number[-4:])
    assert str(new) in texts(r).replace(",", "")
    assert "thank" in texts(r).lower() or "saved" in texts(r).lower()
    assert await readings(live_gateway, acc.customer_number) == [*before, new]


async def test_implausible_reading_is_rejected_with_a_reason(live_gateway: LiveGateway, sender: str) -> None:
    acc = demo_account("40034567")
    before = await readings(live_gateway, acc.customer_number)
    last = await last_reading(live_gateway, acc.customer_number)
    await live_gateway.post(sender, "I want to enter my meter reading")
    await live_gateway.post(sender, acc.customer_number)
    await live_gateway.post(sender, acc.meter_number[-4:])
    r = await live_gateway.post(sender, str(last - 500))
    assert r["state"] == "bot"
    assert str(last) in texts(r).replace(",", "")  # explains against the last reading
    assert "lower" in texts(r)
    assert await readings(live_gateway, acc.customer_number) == before
    r = await live_gateway.post(sender, str(last + 99999))  # an absurd jump
    assert "unusually high" in texts(r)
    assert await readings(live_gateway, acc.customer_number) == before
    r = await live_gateway.post(sender, str(last + 150))
    assert await readings(live_gateway, acc.customer_number) == [*before, last + 150]


@pytest.mark.parametrize(
    ("text", "language"),
    [("Ich möchte mit einem Mitarbeiter sprechen", "de"), ("I want to talk to a human", "en")],
)
async def test_explicit_request_for_a_person_queues_the_conversation(
    live_gateway: LiveGateway, sender: str, text: str, language: str
) -> None:
    r = await live_gateway.post(sender, text)
    assert r["state"] == "queued"
    assert len(r["messages"]) == 1
    assert ("Mitarbeiter" if language == "de" else "team") in texts(r)
    async with live_gateway.db.session() as s:
        [event] = (await s.scalars(select(ConversationEvent).where(ConversationEvent.conversation_id == r["conversation_id"]))).all()
        assert (event.from_state, event.to_state, event.reason) == ("bot", "queued", "customer_request")
    # While queued the bot stays silent, and the message is kept for the agent.
    r2 = await live_gateway.post(sender, "Hallo? Ist da jemand?" if language == "de" else "Hello? Anyone there?")
    assert r2["state"] == "queued" and r2["messages"] == []
    async with live_gateway.db.session() as s:
        inbound = (await s.scalars(select(Message.text).where(Message.conversation_id == r["conversation_id"], Message.direction == "in"))).all()
    assert len(inbound) == 2


async def test_request_for_a_person_interrupts_a_form(live_gateway: LiveGateway, sender: str) -> None:
    await live_gateway.post(sender, "Ich möchte meinen Zählerstand melden")
    r = await live_gateway.post(sender, "Nein, ich will einen echten Menschen sprechen")
    assert r["state"] == "queued"


async def test_the_bot_keeps_the_customers_language(live_gateway: LiveGateway, sender: str) -> None:
    r = await live_gateway.post(sender, "Wann haben Sie geöffnet?")
    assert r["state"] == "bot"
    de = r["messages"][0]["text"]
    assert r["messages"][-1]["buttons"][1]["title"] == "Mit einer Person sprechen"  # the choice, in German
    r = await live_gateway.post(sender, "ok")
    r = await live_gateway.post(sender, "Wann haben Sie geöffnet?")
    assert r["messages"][0]["text"] == de  # still German after a neutral "ok"
    r = await live_gateway.post(sender, "What are your opening hours?")
    assert r["messages"][0]["text"] != de  # switched to English when the customer did


async def test_new_engine_session_carries_the_customer_over(live_gateway: LiveGateway, sender: str) -> None:
    """The engine-side tracker is bounded; the gateway carries number and name into new sessions."""
    acc = demo_account("40012345")  # no other test adds readings to this account
    limit = live_gateway.settings.engine_session_turns
    await live_gateway.post(sender, "Ich möchte meinen Zählerstand melden")
    await live_gateway.post(sender, acc.customer_number)
    await live_gateway.post(sender, acc.meter_number[-4:])
    r = await live_gateway.post(sender, str(await last_reading(live_gateway, acc.customer_number) + 200))
    assert "gespeichert" in texts(r)
    for _ in range(limit):
        r = await live_gateway.post(sender, "Wie sind Ihre Öffnungszeiten?")
    async with live_gateway.db.session() as s:
        conv = await s.get(Conversation, r["conversation_id"])
        assert conv.engine_session >= 1  # the engine tracker was restarted at least once
    r = await live_gateway.post(sender, "Hallo")
    assert acc.name.split()[0] in texts(r)  # greeted by name in the new engine session (still verified)
