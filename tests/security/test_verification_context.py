"""What the agent sees about step-up verification: the handover context says whether the caller
was verified, for which customer number and until when — and a typed number is not "verified"."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from bot.verification import Verification, VerificationPolicy
from handover.context import build_context
from resonanz.store import Database
from resonanz.store.models import Conversation, Customer, utcnow


async def lookup(session: AsyncSession, number: str) -> str | None:
    return {"40012345": "2345"}.get(number)


async def new_conversation(db: Database, language: str) -> str:
    async with db.session() as s:
        customer = Customer()
        s.add(customer)
        await s.flush()
        conv = Conversation(customer_id=customer.id, channel="rest", address={}, language=language,
                            slots={"customer_number": "40012345"})
        s.add(conv)
        await s.flush()
        return conv.id


async def context_json(db: Database, conversation: str) -> dict:
    async with db.session() as s:
        ctx = await build_context(s, conversation, reason="customer_request", trigger="intent:request_human")
    return json.loads(json.dumps(ctx.to_dict()))  # what the console receives


async def test_context_says_not_verified_for_a_typed_number(database: Database) -> None:
    conv = await new_conversation(database, "de")
    await Verification(database, lookup).check(conv, "40012345", "0000")  # a wrong factor
    data = await context_json(database, conv)
    assert data["verification"] == {"status": "not_verified", "customer_number": None, "until": None,
                                    "text": "nicht verifiziert"}
    assert "Kundennummer genannt (nicht verifiziert) 40012345" in data["summary"]
    assert "bestätigt" not in data["summary"] and "verifiziert bis" not in data["summary"]


async def test_context_says_verified_until_when_for_which_number(database: Database) -> None:
    conv = await new_conversation(database, "en")
    result = await Verification(database, lookup, VerificationPolicy(ttl=timedelta(minutes=30))).check(
        conv, "40012345", "2345")
    assert result.verified_until is not None
    data = await context_json(database, conv)
    until = result.verified_until.strftime("%H:%M UTC")
    assert data["verification"]["status"] == "verified"
    assert data["verification"]["customer_number"] == "40012345"
    assert data["verification"]["text"] == f"verified until {until} for customer number 40012345"
    assert abs((utcnow() + timedelta(minutes=30)).timestamp()
               - datetime.fromisoformat(data["verification"]["until"]).timestamp()) < 60
    assert f"verified until {until} for customer number 40012345" in data["summary"]


async def test_an_expired_verification_is_shown_as_not_verified(database: Database) -> None:
    conv = await new_conversation(database, "en")
    past = utcnow() - timedelta(hours=1)
    await Verification(database, lookup, clock=lambda: past).check(conv, "40012345", "2345")  # expired 30 min ago
    data = await context_json(database, conv)
    assert data["verification"]["status"] == "not_verified" and data["verification"]["text"] == "not verified"
