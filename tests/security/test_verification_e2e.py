"""Step-up verification end to end: the real gateway, the real trained Rasa engine, the REST
channel, SQLite and PostgreSQL (the `live_gateway` fixture), in German and in English.

A bare customer number reveals nothing; a wrong factor and an unknown number get the same answer;
after the right factor the instalment and the reading work; the attempt limit ends in the offer
of a person, which hands over."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.reference.demo_data import demo_account
from bot.reference.models import Account, InstalmentChange, MeterReading
from resonanz.store.models import Handover, utcnow
from tests.conftest import LiveGateway

pytestmark = pytest.mark.engine

JUERGEN = demo_account("40023456")
ERIKA = demo_account("40012345")

TEXT = {
    "de": {
        "instalment": "Ich möchte meinen Abschlag ändern",
        "reading": "Ich möchte meinen Zählerstand melden",
        "ask_factor": "letzten 4 Ziffern Ihrer Zählernummer",
        "failed": "Das konnte ich nicht bestätigen.",
        "person": "Mit einer Person sprechen",
        "locked": "keine Kontodaten zeigen oder ändern",
        "yes": "ja",
    },
    "en": {
        "instalment": "I would like to change my monthly instalment",
        "reading": "I want to submit my meter reading",
        "ask_factor": "last 4 digits of your meter number",
        "failed": "I could not verify that.",
        "person": "Talk to a person",
        "locked": "can't show or change any account data",
        "yes": "yes",
    },
}


def texts(reply: dict) -> str:
    return "\n".join(m["text"] for m in reply["messages"])


def new_sender() -> str:
    return "v-" + uuid.uuid4().hex[:12]


def unknown_number() -> str:
    known = {"40012345", "40023456", "40034567", "40045678", "40056789"}
    while (n := "4" + "".join(random.choices("0123456789", k=7))) in known:
        pass
    return n


def factor(acc: object) -> str:
    return acc.meter_number[-4:]  # type: ignore[attr-defined]


@pytest.mark.parametrize("language", ["de", "en"])
async def test_a_bare_number_reveals_nothing_and_known_and_unknown_look_the_same(
    live_gateway: LiveGateway, language: str
) -> None:
    t = TEXT[language]
    answers = []
    for number in (JUERGEN.customer_number, unknown_number()):
        sender = new_sender()
        await live_gateway.post(sender, t["instalment"])
        r = await live_gateway.post(sender, number)
        assert r["state"] == "bot"
        answers.append(texts(r))
    known, unknown = answers
    assert t["ask_factor"] in known
    assert known == unknown  # the same question for a real and an invented number
    for secret in (JUERGEN.name.split()[0], JUERGEN.name.split()[1], "120", "90", "220"):
        assert secret not in known


@pytest.mark.parametrize("language", ["de", "en"])
async def test_wrong_factor_and_unknown_number_answer_identically(live_gateway: LiveGateway, language: str) -> None:
    t = TEXT[language]
    replies = []
    for number, digits in ((ERIKA.customer_number, "0000" if factor(ERIKA) != "0000" else "1111"),
                           (unknown_number(), factor(ERIKA))):
        sender = new_sender()
        await live_gateway.post(sender, t["reading"])
        await live_gateway.post(sender, number)
        r = await live_gateway.post(sender, digits)
        assert r["state"] == "bot"
        replies.append([(m["text"], m.get("buttons")) for m in r["messages"]])
    assert replies[0] == replies[1]
    assert t["failed"] in replies[0][0][0]
    assert ERIKA.name.split()[1] not in str(replies[0])


@pytest.mark.parametrize("language", ["de", "en"])
async def test_after_the_right_factor_the_instalment_changes(live_gateway: LiveGateway, language: str) -> None:
    t = TEXT[language]
    sender = new_sender()
    await live_gateway.post(sender, t["instalment"])
    r = await live_gateway.post(sender, JUERGEN.customer_number)
    assert t["ask_factor"] in texts(r)
    r = await live_gateway.post(sender, factor(JUERGEN))
    # Now, and only now, the current amount and the bounds are shown.
    assert "90" in texts(r) and "220" in texts(r)
    amount = 101 if language == "de" else 102
    r = await live_gateway.post(sender, str(amount))
    assert r["messages"][-1].get("buttons")  # "shall I change it?" yes / no
    r = await live_gateway.post(sender, t["yes"])
    async with live_gateway.db.session() as s:
        changes = (await s.scalars(select(InstalmentChange.new_amount).where(
            InstalmentChange.conversation_id == r["conversation_id"]))).all()
        account = await s.get(Account, JUERGEN.customer_number)
    assert changes == [float(amount)] and account.monthly_instalment == float(amount)


@pytest.mark.parametrize("language", ["de", "en"])
async def test_after_the_right_factor_the_reading_is_stored(live_gateway: LiveGateway, language: str) -> None:
    t = TEXT[language]
    # An account of its own: a reading stored now would make other tests' readings of a shared
    # demo account look implausibly high.
    acc = Account(customer_number=unknown_number(), name="Lena Vogel", postcode="10115",
                  meter_number="1ESY11600" + "".join(random.choices("0123456789", k=5)),
                  last_reading=5000, last_reading_at=utcnow() - timedelta(days=100), yearly_consumption=2000,
                  monthly_instalment=60.0, instalment_min=40.0, instalment_max=120.0)
    number, digits = acc.customer_number, acc.meter_number[-4:]
    async with live_gateway.db.session() as s:
        s.add(acc)
    sender = new_sender()
    await live_gateway.post(sender, t["reading"])
    await live_gateway.post(sender, number)
    r = await live_gateway.post(sender, digits)
    assert "Lena" not in texts(r)
    last = 5000
    r = await live_gateway.post(sender, str(last + 50))
    assert "Lena" in texts(r)  # the confirmation may name the verified customer
    async with live_gateway.db.session() as s:
        stored = (await s.scalars(select(MeterReading.value).where(
            MeterReading.conversation_id == r["conversation_id"]))).all()
    assert stored == [last + 50]


@pytest.mark.parametrize("language", ["de", "en"])
async def test_the_attempt_limit_offers_a_person_who_then_takes_over(live_gateway: LiveGateway, language: str) -> None:
    t = TEXT[language]
    sender = new_sender()
    await live_gateway.post(sender, t["reading"])
    await live_gateway.post(sender, unknown_number())
    for _ in range(2):
        r = await live_gateway.post(sender, "1234")
        assert t["failed"] in texts(r)
    r = await live_gateway.post(sender, "1234")
    assert r["state"] == "bot"
    offer = r["messages"][0]
    assert t["locked"] in offer["text"] and t["ask_factor"] not in texts(r)  # the form ended
    payloads = {b["title"]: b["payload"] for b in offer.get("buttons", [])}
    assert payloads[t["person"]] == "/request_human"
    r = await live_gateway.post(sender, "/request_human")
    assert r["state"] == "queued"
    async with live_gateway.db.session() as s:
        h = await s.scalar(select(Handover).where(Handover.conversation_id == r["conversation_id"]))
    assert h.context["verification"]["status"] == "not_verified"
