"""The reference bot's actions behind step-up verification, through the real action server
(Rasa's protocol) on a real SQLite store: a bare customer number reveals nothing, unknown numbers
and wrong factors answer identically, and nothing is shown or changed before the right factor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.reference import actions as sw
from bot.reference.demo_data import demo_account
from bot.verification import Verification
from resonanz.store import Database
from bot.reference.models import Account, InstalmentChange, MeterReading
from tests.support.actions import _client, call, request_body, response_names, slot_events, sw_db  # noqa: F401

ERIKA = demo_account("40012345")
JUERGEN = demo_account("40023456")
UNKNOWN = "40099999"


def digits(number: str) -> str:
    return demo_account(number).meter_number[-4:]


@pytest_asyncio.fixture
async def client(sw_db: Database) -> AsyncIterator[TestClient]:  # noqa: F811
    c = await _client(sw_db)
    yield c
    await c.close()


async def verify(db: Database, number: str, conversation: str = "conv-1") -> None:
    assert (await Verification(db, sw.meter_digits).check(conversation, number, digits(number))).ok


def in_conversation(body: dict[str, Any], conversation: str) -> dict[str, Any]:
    for event in body["tracker"]["events"]:
        if event["event"] == "user":
            event["metadata"] = {"conversation_id": conversation}
    return body


async def validate(client: TestClient, form: str, slots: dict[str, Any], candidates: dict[str, Any],
                   language: str = "en", conversation: str = "conv-1") -> dict[str, Any]:
    status, body = await call(client, in_conversation(
        request_body(f"validate_{form}", slots, candidates=candidates, form=form, language=language), conversation))
    assert status == 200
    return body


async def test_a_bare_customer_number_reveals_nothing_and_asks_for_the_factor(client: TestClient) -> None:
    for form in ("meter_reading_form", "instalment_form"):
        known = await validate(client, form, {}, {"customer_number": ERIKA.customer_number})
        unknown = await validate(client, form, {}, {"customer_number": UNKNOWN})
        # No name, no "unknown number": the form goes on to the second factor either way.
        assert known["responses"] == unknown["responses"] == []
        assert slot_events(known) == {"verification_factor": None, "customer_number": ERIKA.customer_number}
        assert slot_events(unknown) == {"verification_factor": None, "customer_number": UNKNOWN}


async def test_unknown_number_and_wrong_factor_answer_identically(client: TestClient) -> None:
    for form in ("meter_reading_form", "instalment_form"):
        for language in ("de", "en"):
            wrong = await validate(client, form, {"customer_number": ERIKA.customer_number},
                                   {"verification_factor": "9999"}, language, f"w-{form}-{language}")
            unknown = await validate(client, form, {"customer_number": UNKNOWN},
                                     {"verification_factor": digits(ERIKA.customer_number)}, language,
                                     f"u-{form}-{language}")
            assert wrong == unknown
            assert response_names(wrong) == ["utter_verification_failed"]
            assert slot_events(wrong) == {"verification_factor": None}


async def test_a_malformed_factor_is_not_an_attempt(client: TestClient, sw_db: Database) -> None:  # noqa: F811
    body = await validate(client, "meter_reading_form", {"customer_number": ERIKA.customer_number},
                          {"verification_factor": "12"})
    assert response_names(body) == ["utter_verification_factor_invalid"]
    assert not await Verification(sw_db, sw.meter_digits).locked("conv-1")


async def test_right_factor_verifies_and_then_the_account_is_used(client: TestClient) -> None:
    body = await validate(client, "instalment_form", {"customer_number": JUERGEN.customer_number},
                          {"verification_factor": f"die letzten 4: {digits(JUERGEN.customer_number)}"})
    assert slot_events(body) == {"customer_name": JUERGEN.name, "verification_factor": "verified"}
    assert body["responses"] == []
    _, ask = await call(client, request_body("action_ask_instalment_amount", {"customer_number": JUERGEN.customer_number}))
    assert response_names(ask) == ["utter_ask_instalment_amount_bounds"]


async def test_before_verification_no_bounds_or_amounts_are_shown(client: TestClient) -> None:
    slots = {"customer_number": JUERGEN.customer_number, "instalment_amount": 100.0}
    _, ask = await call(client, request_body("action_ask_instalment_amount", slots))
    assert ask["responses"] == [{"response": "utter_ask_instalment_amount", "buttons": []}]
    _, confirm = await call(client, request_body("action_ask_instalment_confirmed", slots))
    assert [(r["response"], sorted(r)) for r in confirm["responses"]] == [
        ("utter_confirm_instalment_plain", ["buttons", "new", "response"])]
    # An out-of-bounds amount is accepted as a number only; its bounds are not revealed.
    body = await validate(client, "instalment_form", {"customer_number": JUERGEN.customer_number},
                          {"instalment_amount": "1000"})
    assert body["responses"] == [] and slot_events(body) == {"instalment_amount": 1000.0}


async def test_a_reading_before_verification_is_checked_only_after_it(client: TestClient) -> None:
    early = await validate(client, "meter_reading_form", {"customer_number": ERIKA.customer_number},
                           {"meter_reading": "500"})
    assert early["responses"] == [] and slot_events(early) == {"meter_reading": 500}  # no last reading shown
    after = await validate(client, "meter_reading_form", {"customer_number": ERIKA.customer_number, "meter_reading": 500},
                           {"verification_factor": digits(ERIKA.customer_number)})
    assert response_names(after) == ["utter_meter_reading_too_low"]
    assert slot_events(after)["meter_reading"] is None and slot_events(after)["verification_factor"] == "verified"


async def test_submitting_without_verification_changes_nothing(client: TestClient, sw_db: Database) -> None:  # noqa: F811
    _, meter = await call(client, request_body(
        "action_submit_meter_reading", {"customer_number": ERIKA.customer_number, "meter_reading": 12500}))
    _, instalment = await call(client, request_body(
        "action_submit_instalment",
        {"customer_number": JUERGEN.customer_number, "instalment_amount": 100.0, "instalment_confirmed": True}))
    assert response_names(meter) == response_names(instalment) == ["utter_verification_expired"]
    async with sw_db.session() as s:
        assert await s.scalar(select(func.count()).select_from(MeterReading)) == 0
        assert await s.scalar(select(func.count()).select_from(InstalmentChange)) == 0
        assert (await s.get(Account, JUERGEN.customer_number)).monthly_instalment == JUERGEN.monthly_instalment


async def test_after_verification_the_reading_and_the_instalment_work(client: TestClient, sw_db: Database) -> None:  # noqa: F811
    await verify(sw_db, ERIKA.customer_number)
    _, meter = await call(client, request_body(
        "action_submit_meter_reading", {"customer_number": ERIKA.customer_number, "meter_reading": 12500}))
    assert response_names(meter) == ["utter_meter_reading_saved"]
    assert meter["responses"][0]["customer_name"] == ERIKA.name
    # Verified for Erika's number only: Jürgen's instalment stays as it is.
    _, other = await call(client, request_body(
        "action_submit_instalment",
        {"customer_number": JUERGEN.customer_number, "instalment_amount": 100.0, "instalment_confirmed": True}))
    assert response_names(other) == ["utter_verification_expired"]
    async with sw_db.session() as s:
        assert (await s.scalars(select(MeterReading.value))).all() == [12500]
        assert await s.scalar(select(func.count()).select_from(InstalmentChange)) == 0


async def test_the_third_failure_stops_the_form_and_offers_a_person(client: TestClient, sw_db: Database) -> None:  # noqa: F811
    slots = {"customer_number": ERIKA.customer_number}
    for _ in range(2):
        body = await validate(client, "meter_reading_form", slots, {"verification_factor": "0000"})
        assert response_names(body) == ["utter_verification_failed"]
    body = await validate(client, "meter_reading_form", slots, {"verification_factor": "0000"})
    assert response_names(body) == ["utter_verification_locked"]
    assert {"event": "active_loop", "name": None} in body["events"]
    assert slot_events(body)["verification_factor"] == "locked"
    # Locked: even the right digits are refused now, and a new start is refused at once.
    body = await validate(client, "meter_reading_form", slots, {"verification_factor": digits(ERIKA.customer_number)})
    assert response_names(body) == ["utter_verification_locked"]
    again = await validate(client, "instalment_form", {}, {"customer_number": UNKNOWN})
    assert response_names(again) == ["utter_verification_locked"]
    # The form ends on the lock; its submit step then stays silent (the offer was the answer).
    _, submit = await call(client, request_body(
        "action_submit_meter_reading", {**slots, "verification_factor": "locked", "meter_reading": 12500}))
    assert submit["responses"] == [] and slot_events(submit)["verification_factor"] is None


async def test_greeting_by_name_only_when_verified(client: TestClient, sw_db: Database) -> None:  # noqa: F811
    # A name in the slots (a channel's display name, an old slot) is no proof.
    _, anonymous = await call(client, request_body(
        "action_greet", {"customer_number": ERIKA.customer_number, "customer_name": "Erika Mustermann"}))
    assert response_names(anonymous) == ["utter_greet"]
    await verify(sw_db, ERIKA.customer_number)
    _, known = await call(client, request_body("action_greet", {"customer_number": ERIKA.customer_number}))
    assert known["responses"] == [{"response": "utter_greet_name", "buttons": [], "name": ERIKA.name}]


async def test_a_kept_verified_marker_is_not_trusted(client: TestClient) -> None:
    body = await validate(client, "meter_reading_form", {"customer_number": ERIKA.customer_number},
                          {"verification_factor": "verified"})
    assert slot_events(body) == {"verification_factor": None}
