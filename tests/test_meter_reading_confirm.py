"""No dead end for an unusually high meter reading: the bot explains it with two buttons, "yes,
that is right" (the same reading, confirmed: stored) and "talk to a person" (/request_human).
A confirmation never passes a reading lower than the last one. Action server on SQLite."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.reference import actions as sw
from bot.reference.demo_data import demo_account
from bot.reference.models import Account, MeterReading
from bot.verification import Verification
from resonanz.store import Database
from tests.support.actions import _client, call, request_body, response_names, slot_events, sw_db  # noqa: F401

ERIKA = demo_account("40012345")


@pytest_asyncio.fixture
async def client(sw_db: Database) -> AsyncIterator[TestClient]:  # noqa: F811
    assert (await Verification(sw_db, sw.meter_digits).check("conv-1", ERIKA.customer_number,
                                                             ERIKA.meter_number[-4:])).ok
    c = await _client(sw_db)
    yield c
    await c.close()


async def validate(client: TestClient, reading: str, language: str = "de") -> dict:
    status, body = await call(client, request_body(
        "validate_meter_reading_form", {"customer_number": ERIKA.customer_number}, language=language,
        candidates={"meter_reading": reading}, form="meter_reading_form"))
    assert status == 200
    return body


def payload_number(payload: str) -> str:
    """What Rasa takes from a button payload like /inform{"number": "..."}."""
    intent, _, entities = payload.partition("{")
    assert intent == "/inform"
    return json.loads("{" + entities)["number"]


async def test_a_high_reading_can_be_confirmed_and_is_stored(client: TestClient, sw_db: Database) -> None:
    body = await validate(client, "99999")
    assert slot_events(body) == {"meter_reading": None}
    [resp] = body["responses"]
    assert resp["response"] == "utter_meter_reading_too_high"
    titles = [b["title"] for b in resp["buttons"]]
    assert titles == ["Ja, der Stand stimmt", "Mit einer Person sprechen"]
    confirm, person = resp["buttons"]
    assert person["payload"] == "/request_human"

    confirmed = await validate(client, payload_number(confirm["payload"]))
    assert confirmed["responses"] == []
    value = slot_events(confirmed)["meter_reading"]
    assert value is not None

    status, saved = await call(client, request_body(
        "action_submit_meter_reading", {"customer_number": ERIKA.customer_number, "meter_reading": value}, language="de"))
    assert status == 200 and response_names(saved) == ["utter_meter_reading_saved"]
    assert saved["responses"][0]["reading"] == "99.999 kWh"
    async with sw_db.session() as s:
        assert list((await s.scalars(select(MeterReading.value))).all()) == [99999]
        assert (await s.get(Account, ERIKA.customer_number)).last_reading == 99999


async def test_the_buttons_follow_the_language_and_a_confirmation_never_passes_a_low_reading(client: TestClient) -> None:
    [resp] = (await validate(client, "99999", language="en"))["responses"]
    assert [b["title"] for b in resp["buttons"]] == ["Yes, that is right", "Talk to a person"]
    low = await validate(client, f"{sw.CONFIRMED}{ERIKA.last_reading - 5}")
    assert slot_events(low) == {"meter_reading": None}
    assert response_names(low) == ["utter_meter_reading_too_low"]
    typed = await validate(client, f"{sw.CONFIRMED}not a number")
    assert response_names(typed) == ["utter_meter_reading_invalid"]
