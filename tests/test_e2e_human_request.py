"""A customer who asks for a person reaches the queue in that same turn — in 30+ phrasings, German
and English, with typos, from the first message and in the middle of a form. Real engine."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import LiveGateway

pytestmark = pytest.mark.engine

PHRASINGS = [
    # German
    "Ich möchte mit einem Mitarbeiter sprechen", "Mitarbeiter bitte", "echter Mensch bitte",
    "Kann ich mit einem Menschen reden?", "Bitte verbinden Sie mich mit einem Kundenberater",
    "Ich will keinen Bot, ich will einen Menschen", "Rufen Sie mich bitte an", "ruf mich an",
    "Gibt es hier auch echte Menschen?", "Sachbearbeiter", "mitarbaiter bitte", "kan ich mit einem menshcen sprechen",
    "Ich hätte gern einen Rückruf", "Mit einer Person sprechen bitte", "Verbinden Sie mich mit jemandem aus dem Team",
    "Ich möchte lieber mit einem Menschen schreiben",
    # English
    "I want to talk to a human", "human please", "agent", "Can I speak to a real person?", "representative please",
    "operator", "call me", "please call me back", "i wnat to talk to a humen", "hooman please",
    "Let me talk to someone from your team", "I need a real person, not a bot", "connect me to an agent",
    "Is there a human I can chat with?", "speak to customer service rep", "talk to someone",
]


def test_there_are_more_than_thirty_phrasings() -> None:
    assert len(PHRASINGS) >= 30 and len(set(PHRASINGS)) == len(PHRASINGS)


async def test_every_phrasing_reaches_the_queue_in_the_same_turn(live_gateway: LiveGateway) -> None:
    missed = []
    for text in PHRASINGS:
        r = await live_gateway.post("p-" + uuid.uuid4().hex[:10], text)
        if r["state"] != "queued":
            missed.append((text, [m["text"] for m in r["messages"]]))
    assert missed == []


@pytest.mark.parametrize("text", ["Ich will jetzt einen Menschen sprechen", "agent please"])
async def test_a_request_in_the_middle_of_a_form_interrupts_it(live_gateway: LiveGateway, text: str) -> None:
    sender = "f-" + uuid.uuid4().hex[:10]
    r = await live_gateway.post(sender, "Ich möchte meinen Abschlag ändern")
    assert r["state"] == "bot"
    r = await live_gateway.post(sender, text)
    assert r["state"] == "queued"


async def test_a_complex_matter_collects_the_customer_number_then_reaches_a_person(live_gateway: LiveGateway) -> None:
    from sqlalchemy import select

    from resonanz.store.models import Handover

    sender = "k-" + uuid.uuid4().hex[:10]
    r = await live_gateway.post(sender, "Ich möchte meinen Vertrag kündigen")
    assert r["state"] == "bot"
    assert "Kundennummer" in " ".join(m["text"] for m in r["messages"])
    r = await live_gateway.post(sender, "40012345")
    assert r["state"] == "queued"
    async with live_gateway.db.session() as s:
        h = await s.scalar(select(Handover).where(Handover.conversation_id == r["conversation_id"]))
    assert h.reason == "complex_matter" and h.context["slots"]["customer_number"] == "40012345"
    assert h.context["profile"]["customer_number"] == "40012345"
