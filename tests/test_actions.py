"""The action server (Rasa's action-server protocol) and the reference bot's actions, against a real
SQLite store. Request bodies are shaped like the ones Rasa 3.6 sends."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from structlog.testing import capture_logs

from bot.actions import ActionContext, Registry, Tracker
from bot.reference import actions as sw
from bot.actions.server import WEBHOOK_PATH, ActionServer, load_actions
from bot.reference.demo_data import (
    DEMO_ACCOUNTS,
    DEMO_OUTAGE_POSTCODES,
    DEMO_OUTAGES,
    DEMO_POSTCODE_WITHOUT_OUTAGE,
    demo_account,
    seed_demo_data,
)
from bot.verification import Verification
from resonanz.customer_number import CustomerNumbers
from resonanz.settings import Settings
from resonanz.store import Database
from bot.reference.models import Account, InstalmentChange, MeterReading, Outage, OutageLookup
from resonanz.store.models import Base, utcnow
from tests.support.actions import TOKEN, _client, call, request_body, response_names, slot_events, sw_db  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
ERIKA = demo_account("40012345")
JUERGEN = demo_account("40023456")


# --- fixtures and request builders ---------------------------------------------------------------


async def verify(db: Database, number: str, conversation: str = "conv-1") -> None:
    """Step-up verification of the test conversation (the last 4 digits of the meter number)."""
    factor = demo_account(number).meter_number[-4:]
    assert (await Verification(db, sw.meter_digits).check(conversation, number, factor)).ok


@pytest_asyncio.fixture
async def client(sw_db: Database) -> AsyncIterator[TestClient]:
    c = await _client(sw_db)
    yield c
    await c.close()


# --- the protocol -----------------------------------------------------------------------------------


async def test_missing_token_is_refused(client: TestClient) -> None:
    status, body = await call(client, request_body("action_greet"), token=None)
    assert status == 401 and "error" in body


async def test_wrong_token_is_refused(client: TestClient) -> None:
    status, _ = await call(client, request_body("action_greet"), token=TOKEN + "x")
    assert status == 401


async def test_an_empty_configured_token_fails_closed(sw_db: Database) -> None:
    app = web.Application()
    app.router.add_routes(ActionServer(sw_db, "").routes())
    async with TestClient(TestServer(app)) as c:
        resp = await c.post(WEBHOOK_PATH, json=request_body("action_greet"), params={"token": ""})
        assert resp.status == 401


async def test_unknown_action_is_404_with_its_name(client: TestClient) -> None:
    status, body = await call(client, request_body("action_does_not_exist"))
    assert status == 404
    assert body["action_name"] == "action_does_not_exist" and body["error"]


async def test_invalid_json_is_400(client: TestClient) -> None:
    resp = await client.post(WEBHOOK_PATH, data=b"{not json", params={"token": TOKEN})
    assert resp.status == 400


async def test_failing_action_is_500_and_logged(sw_db: Database) -> None:
    reg = Registry()

    @reg.action("action_boom")
    async def boom(ctx: ActionContext) -> None:
        raise RuntimeError("kaputt")

    c = await _client(sw_db, reg)
    try:
        with capture_logs() as logs:
            status, body = await call(c, request_body("action_boom"))
    finally:
        await c.close()
    assert status == 500 and "action_boom" in body["error"]
    assert [(e["event"], e["action"], e["log_level"]) for e in logs] == [("action.failed", "action_boom", "error")]


async def test_custom_registry_action_gets_db_tracker_and_dispatcher(sw_db: Database) -> None:
    reg = Registry()

    @reg.action("action_echo")
    async def echo(ctx: ActionContext) -> None:
        async with ctx.db.session() as s:
            n = await s.scalar(select(func.count()).select_from(Account))
        ctx.utter("utter_echo", count=n, intent=ctx.tracker.intent)
        ctx.say("plain", buttons=[{"title": "A", "payload": "/a"}])
        ctx.set_slot("x", ctx.tracker.conversation_id)

    c = await _client(sw_db, reg)
    try:
        status, body = await call(c, request_body("action_echo", intent="greet"))
    finally:
        await c.close()
    assert status == 200
    assert body["responses"][0] == {"response": "utter_echo", "buttons": [], "count": 5, "intent": "greet"}
    assert body["responses"][1] == {"text": "plain", "buttons": [{"title": "A", "payload": "/a"}]}
    assert body["events"] == [{"event": "slot", "name": "x", "value": "conv-1"}]


def test_registering_an_action_twice_is_an_error() -> None:
    reg = Registry()
    reg.action("action_x")(sw.greet)
    with pytest.raises(ValueError):
        reg.action("action_x")(sw.greet)


def test_tracker_slots_to_validate_are_the_trailing_slot_events() -> None:
    body = request_body(
        "validate_meter_reading_form",
        {"customer_number": "40012345"},
        candidates={"meter_reading": "12500"},
        form="meter_reading_form",
    )
    tracker = Tracker(body["tracker"])
    assert tracker.slots_to_validate() == {"meter_reading": "12500"}
    assert tracker.active_loop == "meter_reading_form"
    assert tracker.conversation_id == "conv-1"
    assert tracker.language == "en"


# --- greeting ------------------------------------------------------------------------------------------


async def test_greet_uses_the_name_once_verified(client: TestClient, sw_db: Database) -> None:
    _, anonymous = await call(client, request_body("action_greet"))
    assert response_names(anonymous) == ["utter_greet"]
    await verify(sw_db, "40012345")
    _, known = await call(client, request_body("action_greet", {"customer_number": "40012345"}))
    assert known["responses"][0]["response"] == "utter_greet_name"
    assert known["responses"][0]["name"] == "Erika Mustermann"


# --- meter reading ----------------------------------------------------------------------------------------


async def validate_meter(client: TestClient, slots: dict[str, Any], candidates: dict[str, Any], language: str = "en") -> dict[str, Any]:
    status, body = await call(
        client,
        request_body("validate_meter_reading_form", slots, candidates=candidates, form="meter_reading_form", language=language),
    )
    assert status == 200
    return body


async def test_meter_both_values_in_one_message(client: TestClient) -> None:
    body = await validate_meter(client, {}, {"customer_number": "40012345", "meter_reading": "12500"})
    # Accepted as given; the form asks for the second factor next (tests/security/).
    assert slot_events(body) == {"verification_factor": None, "customer_number": "40012345", "meter_reading": 12500}
    assert body["responses"] == []


async def test_meter_malformed_customer_number_is_rejected(client: TestClient) -> None:
    body = await validate_meter(client, {}, {"customer_number": "1234"})
    assert slot_events(body) == {"customer_number": None}
    assert response_names(body) == ["utter_customer_number_invalid"]


async def test_meter_reading_lower_than_last_is_explained(client: TestClient, sw_db: Database) -> None:
    await verify(sw_db, "40012345")
    body = await validate_meter(client, {"customer_number": "40012345"}, {"meter_reading": "11000"}, language="de")
    assert slot_events(body) == {"meter_reading": None}
    [resp] = body["responses"]
    assert resp["response"] == "utter_meter_reading_too_low"
    assert resp["last_reading"] == "12.000 kWh" and resp["reading"] == "11.000 kWh"


async def test_meter_reading_absurd_jump_is_explained(client: TestClient, sw_db: Database) -> None:
    await verify(sw_db, "40012345")
    body = await validate_meter(client, {"customer_number": "40012345"}, {"meter_reading": "99999 kWh"})
    assert slot_events(body) == {"meter_reading": None}
    [resp] = body["responses"]
    assert resp["response"] == "utter_meter_reading_too_high"
    assert resp["yearly"] == "3,000 kWh"


async def test_meter_reading_at_the_plausibility_limit(client: TestClient, sw_db: Database) -> None:
    await verify(sw_db, ERIKA.customer_number)
    async with sw_db.session() as s:
        account = await s.get(Account, ERIKA.customer_number)
        assert account is not None
        # Leave a minute of slack: the limit grows while the test runs, never shrinks.
        limit = sw.max_plausible_reading(account, utcnow() - timedelta(minutes=1))
    ok = await validate_meter(client, {"customer_number": ERIKA.customer_number}, {"meter_reading": str(limit)})
    assert slot_events(ok) == {"meter_reading": limit}
    too_much = await validate_meter(client, {"customer_number": ERIKA.customer_number}, {"meter_reading": str(limit + 50)})
    assert slot_events(too_much) == {"meter_reading": None}


async def test_meter_reading_first_is_checked_once_verified(client: TestClient) -> None:
    early = await validate_meter(client, {}, {"meter_reading": "500"})
    assert slot_events(early) == {"meter_reading": 500}  # no account yet: only the format is checked
    later = await validate_meter(client, {"meter_reading": 500}, {"customer_number": "40012345"})
    assert slot_events(later) == {"verification_factor": None, "customer_number": "40012345"}
    verified = await validate_meter(client, {"meter_reading": 500, "customer_number": "40012345"},
                                    {"verification_factor": ERIKA.meter_number[-4:]})
    assert slot_events(verified)["meter_reading"] is None
    assert "utter_meter_reading_too_low" in response_names(verified)


async def test_meter_reading_that_is_not_a_number_is_rejected(client: TestClient, sw_db: Database) -> None:
    await verify(sw_db, "40012345")
    body = await validate_meter(client, {"customer_number": "40012345"}, {"meter_reading": "abc"})
    assert slot_events(body) == {"meter_reading": None}
    assert response_names(body) == ["utter_meter_reading_invalid"]


async def test_completed_meter_reading_is_stored_and_confirmed_with_the_values(client: TestClient, sw_db: Database) -> None:
    await verify(sw_db, "40012345")
    slots = {"customer_number": "40012345", "meter_reading": 12500}
    status, body = await call(client, request_body("action_submit_meter_reading", slots, language="de"))
    assert status == 200
    [resp] = body["responses"]
    assert resp["response"] == "utter_meter_reading_saved"
    assert (resp["reading"], resp["customer_number"], resp["customer_name"]) == ("12.500 kWh", "40012345", "Erika Mustermann")
    assert slot_events(body) == {"meter_reading": None, "verification_factor": None, "customer_name": "Erika Mustermann"}
    async with sw_db.session() as s:
        rows = (await s.scalars(select(MeterReading))).all()
        account = await s.get(Account, "40012345")
    assert [(r.customer_number, r.value, r.conversation_id) for r in rows] == [("40012345", 12500, "conv-1")]
    assert account is not None and account.last_reading == 12500
    assert utcnow() - account.last_reading_at < timedelta(minutes=1)


async def test_a_reading_made_implausible_in_the_meantime_is_not_stored(client: TestClient, sw_db: Database) -> None:
    await verify(sw_db, "40012345")
    slots = {"customer_number": "40012345", "meter_reading": 11000}  # below the stored reading
    _, body = await call(client, request_body("action_submit_meter_reading", slots))
    assert response_names(body) == ["utter_meter_reading_too_low"]
    async with sw_db.session() as s:
        assert await s.scalar(select(func.count()).select_from(MeterReading)) == 0
        account = await s.get(Account, "40012345")
    assert account is not None and account.last_reading == ERIKA.last_reading


# --- outages ---------------------------------------------------------------------------------------------


async def validate_outage(client: TestClient, candidates: dict[str, Any], language: str = "en") -> dict[str, Any]:
    status, body = await call(
        client, request_body("validate_outage_form", candidates=candidates, form="outage_form", language=language)
    )
    assert status == 200
    return body


@pytest.mark.parametrize("language", ["de", "en"])
async def test_known_outage_is_described_in_the_customers_language(client: TestClient, language: str) -> None:
    outage = DEMO_OUTAGES[0]
    body = await validate_outage(client, {"postcode": outage.postcode}, language)
    assert slot_events(body) == {"outage_report": "known", "postcode": outage.postcode}
    [resp] = body["responses"]
    assert resp["response"] == "utter_outage_known"
    expected = outage.description_de if language == "de" else outage.description_en
    assert resp["description"] == expected
    if language == "de":
        assert re.fullmatch(r"\d\d\.\d\d\.\d{4}, \d\d:\d\d Uhr", resp["expected_end"])


async def test_no_known_outage_offers_a_report(client: TestClient) -> None:
    body = await validate_outage(client, {"postcode": DEMO_POSTCODE_WITHOUT_OUTAGE})
    assert slot_events(body) == {"postcode": DEMO_POSTCODE_WITHOUT_OUTAGE}
    assert response_names(body) == ["utter_no_outage_known"]


async def test_invalid_postcode_is_rejected(client: TestClient) -> None:
    body = await validate_outage(client, {"postcode": "1011"})
    assert slot_events(body) == {"postcode": None}
    assert response_names(body) == ["utter_postcode_invalid"]


async def test_every_outage_lookup_is_recorded_whatever_it_found(client: TestClient, sw_db: Database) -> None:
    """The self-service report counts lookups: one row per postcode looked up (a known outage, one
    customers reported, or nothing), none for a postcode refused as invalid."""
    await validate_outage(client, {"postcode": DEMO_OUTAGES[0].postcode})
    await validate_outage(client, {"postcode": DEMO_POSTCODE_WITHOUT_OUTAGE})
    await validate_outage(client, {"postcode": "1011"})
    await call(client, request_body("action_finish_outage", {"postcode": DEMO_POSTCODE_WITHOUT_OUTAGE, "outage_report": True}))
    await validate_outage(client, {"postcode": DEMO_POSTCODE_WITHOUT_OUTAGE})
    async with sw_db.session() as s:
        rows = (await s.scalars(select(OutageLookup).order_by(OutageLookup.id))).all()
    assert [(r.postcode, r.outcome, r.conversation_id) for r in rows] == [
        (DEMO_OUTAGES[0].postcode, "known", "conv-1"), (DEMO_POSTCODE_WITHOUT_OUTAGE, "none", "conv-1"),
        (DEMO_POSTCODE_WITHOUT_OUTAGE, "reported", "conv-1")]
    assert all(r.looked_up_at is not None for r in rows)


async def test_reported_outage_is_stored_and_known_afterwards(client: TestClient, sw_db: Database) -> None:
    slots = {"postcode": DEMO_POSTCODE_WITHOUT_OUTAGE, "outage_report": True}
    _, body = await call(client, request_body("action_finish_outage", slots))
    assert response_names(body) == ["utter_outage_reported"]
    assert slot_events(body) == {"postcode": None, "outage_report": None}
    async with sw_db.session() as s:
        rows = (await s.scalars(select(Outage).where(Outage.postcode == DEMO_POSTCODE_WITHOUT_OUTAGE))).all()
    assert [(o.status, o.kind, o.reported_by_conversation) for o in rows] == [("reported", "power", "conv-1")]
    again = await validate_outage(client, {"postcode": DEMO_POSTCODE_WITHOUT_OUTAGE})
    assert response_names(again) == ["utter_outage_already_reported"]


async def test_declined_outage_report_stores_nothing(client: TestClient, sw_db: Database) -> None:
    slots = {"postcode": DEMO_POSTCODE_WITHOUT_OUTAGE, "outage_report": False}
    _, body = await call(client, request_body("action_finish_outage", slots))
    assert response_names(body) == ["utter_outage_not_reported"]
    async with sw_db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Outage)) == len(DEMO_OUTAGES)


# --- instalment -----------------------------------------------------------------------------------------


async def validate_instalment(client: TestClient, slots: dict[str, Any], candidates: dict[str, Any], language: str = "en") -> dict[str, Any]:
    status, body = await call(
        client,
        request_body("validate_instalment_form", slots, candidates=candidates, form="instalment_form", language=language),
    )
    assert status == 200
    return body


async def test_instalment_out_of_bounds_explains_the_bounds(client: TestClient, sw_db: Database) -> None:
    await verify(sw_db, "40012345")
    body = await validate_instalment(client, {"customer_number": "40012345"}, {"instalment_amount": "200"}, "de")
    assert slot_events(body) == {"instalment_amount": None}
    [resp] = body["responses"]
    assert resp["response"] == "utter_instalment_out_of_bounds"
    assert (resp["min"], resp["max"], resp["amount"]) == ("60,00 €", "150,00 €", "200,00 €")


@pytest.mark.parametrize(("raw", "amount"), [("95", 95.0), ("100,50", 100.5), ("60", 60.0), ("150.00", 150.0)])
async def test_instalment_within_bounds_is_accepted(client: TestClient, sw_db: Database, raw: str, amount: float) -> None:
    await verify(sw_db, "40012345")
    body = await validate_instalment(client, {"customer_number": "40012345"}, {"instalment_amount": raw})
    assert slot_events(body) == {"instalment_amount": amount}
    assert body["responses"] == []


async def test_instalment_amount_first_is_checked_once_verified(client: TestClient) -> None:
    body = await validate_instalment(client, {"instalment_amount": 40.0, "customer_number": "40012345"},
                                     {"verification_factor": ERIKA.meter_number[-4:]})
    assert slot_events(body) == {"customer_name": "Erika Mustermann", "instalment_amount": None, "verification_factor": "verified"}
    assert response_names(body) == ["utter_instalment_out_of_bounds"]


async def test_instalment_question_shows_current_amount_and_bounds(client: TestClient, sw_db: Database) -> None:
    await verify(sw_db, "40023456")
    _, body = await call(client, request_body("action_ask_instalment_amount", {"customer_number": "40023456"}))
    [resp] = body["responses"]
    assert resp["response"] == "utter_ask_instalment_amount_bounds"
    assert (resp["current"], resp["min"], resp["max"]) == ("€120.00", "€90.00", "€220.00")


async def test_instalment_is_changed_only_after_confirmation(client: TestClient, sw_db: Database) -> None:
    await verify(sw_db, "40023456")
    slots = {"customer_number": "40023456", "instalment_amount": 100.5}
    _, ask = await call(client, request_body("action_ask_instalment_confirmed", slots))
    assert ask["responses"][0]["response"] == "utter_confirm_instalment"
    assert (ask["responses"][0]["old"], ask["responses"][0]["new"]) == ("€120.00", "€100.50")
    async with sw_db.session() as s:
        account = await s.get(Account, "40023456")
    assert account is not None and account.monthly_instalment == JUERGEN.monthly_instalment

    _, denied = await call(client, request_body("action_submit_instalment", {**slots, "instalment_confirmed": False}))
    assert response_names(denied) == ["utter_instalment_unchanged"]
    async with sw_db.session() as s:
        assert await s.scalar(select(func.count()).select_from(InstalmentChange)) == 0

    _, done = await call(client, request_body("action_submit_instalment", {**slots, "instalment_confirmed": True}))
    assert response_names(done) == ["utter_instalment_changed"]
    async with sw_db.session() as s:
        changes = (await s.scalars(select(InstalmentChange))).all()
        account = await s.get(Account, "40023456")
    assert [(c.old_amount, c.new_amount, c.conversation_id) for c in changes] == [(120.0, 100.5, "conv-1")]
    assert account is not None and account.monthly_instalment == 100.5


async def test_reset_forms_keeps_the_customer(client: TestClient) -> None:
    slots = {"customer_number": "40012345", "customer_name": "Erika", "meter_reading": 12500, "requested_slot": "meter_reading"}
    _, body = await call(client, request_body("action_reset_forms", slots))
    assert slot_events(body) == {"meter_reading": None, "requested_slot": None}


# --- pure helpers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [("12345", 12345), ("12.345", 12345), ("12345,6", 12345), ("12345 kWh", 12345), ("999999", 999999),
     ("1000000", None), ("abc", None), ("-5", None), ("", None)],
)
def test_parse_reading(raw: str, value: int | None) -> None:
    assert sw.parse_reading(raw) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [("85", 85.0), ("85,50", 85.5), ("85.5", 85.5), ("85 €", 85.0), ("EUR 70", 70.0), ("1,2,3", None), ("x", None)],
)
def test_parse_amount(raw: str, value: float | None) -> None:
    assert sw.parse_amount(raw) == value


def test_formatting_follows_the_language() -> None:
    assert sw.fmt_kwh(12345, "de") == "12.345 kWh" and sw.fmt_kwh(12345, "en") == "12,345 kWh"
    assert sw.fmt_eur(1234.5, "de") == "1.234,50 €" and sw.fmt_eur(1234.5, "en") == "€1,234.50"


# --- demo data ----------------------------------------------------------------------------------------------


async def test_seeding_is_idempotent(sw_db: Database) -> None:
    assert await seed_demo_data(sw_db) is False
    async with sw_db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Account)) == len(DEMO_ACCOUNTS) == 5
        assert await s.scalar(select(func.count()).select_from(Outage)) == len(DEMO_OUTAGES)
        postcodes = set((await s.scalars(select(Outage.postcode))).all())
    assert postcodes == set(DEMO_OUTAGE_POSTCODES) and DEMO_POSTCODE_WITHOUT_OUTAGE not in postcodes


def test_demo_accounts_are_consistent() -> None:
    for a in DEMO_ACCOUNTS:
        assert re.fullmatch(r"4\d{7}", a.customer_number)
        assert a.instalment_min <= a.monthly_instalment <= a.instalment_max
        assert 0 <= a.last_reading <= sw.MAX_READING
    assert len({a.customer_number for a in DEMO_ACCOUNTS}) == len(DEMO_ACCOUNTS)


# --- domain.yml and the actions agree ------------------------------------------------------------------------


def _domain() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def test_every_custom_action_in_the_domain_is_served_and_vice_versa() -> None:
    served = set(load_actions(Settings().actions).actions)  # what the configured bot serves
    assert set(_domain()["actions"]) == served


def test_every_response_has_a_german_and_an_english_variation() -> None:
    de_condition = [{"type": "slot", "name": "language", "value": "de"}]
    for name, variations in _domain()["responses"].items():
        conditions = [v.get("condition") for v in variations]
        assert de_condition in conditions, name
        assert None in conditions, f"{name} has no unconditional (English) variation"


def test_every_response_the_actions_utter_exists() -> None:
    source = (ROOT / "bot" / "reference" / "actions.py").read_text(encoding="utf-8")
    used = set(re.findall(r'"(utter_[a-z_]+)"', source))
    assert used and used <= set(_domain()["responses"])


def test_gateway_slots_and_intents_exist() -> None:
    domain = _domain()
    assert {"language", "customer_number", "customer_name"} <= set(domain["slots"])
    assert domain["slots"]["language"]["influence_conversation"] is False
    assert domain["slots"]["language"]["mappings"] == [{"type": "custom"}]
    assert {"request_human", "terminate_contract", "complaint", "tariff_advice"} <= set(domain["intents"])
    assert domain["session_config"]["carry_over_slots_to_new_session"] is True


def test_every_policy_has_max_history_5() -> None:
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    assert config["assistant_id"]
    assert config["policies"] and all(p.get("max_history") == 5 for p in config["policies"])
