"""Routing rules and queue notices, as pure functions."""

from datetime import UTC, datetime, timedelta

import pytest

from handover.routing import (
    AgentView,
    choose_agent,
    closed_notice,
    estimate_wait,
    is_cancel_request,
    is_open,
    next_opening,
    position_changed_materially,
    queue_key_for,
    queue_notice,
)


def agent(id: str, *, status: str = "online", capacity: int = 3, load: int = 0, skills=("general",), languages=("de", "en")) -> AgentView:
    return AgentView(id, status, capacity, load, tuple(skills), tuple(languages))


def choose(agents, previous=None, exclude=(), skill="general", language="de"):
    chosen = choose_agent(agents, skill=skill, language=language, previous_agent_id=previous, exclude=exclude)
    return chosen.id if chosen else None


def test_same_agent_as_last_time_when_online_and_below_capacity() -> None:
    assert choose([agent("a", load=0), agent("b", load=2)], previous="b") == "b"


def test_same_agent_is_skipped_when_full_offline_or_away() -> None:
    for b in (agent("b", load=3), agent("b", status="offline"), agent("b", status="away")):
        assert choose([agent("a", load=1), b], previous="b") == "a"


def test_least_loaded_relative_to_capacity() -> None:
    assert choose([agent("a", load=2, capacity=3), agent("b", load=2, capacity=6)]) == "b"


def test_skill_and_language_must_match() -> None:
    agents = [agent("general-de", languages=("de",)), agent("contracts-en", skills=("contracts",), languages=("en",)),
              agent("contracts-de", skills=("contracts",), languages=("de",), load=2)]
    assert choose(agents, skill="contracts", language="de") == "contracts-de"
    assert choose(agents, skill="contracts", language="en") == "contracts-en"
    assert choose(agents, skill="sales", language="de") is None


def test_never_offline_away_or_full_agents() -> None:
    assert choose([agent("a", status="offline"), agent("b", status="away"), agent("c", load=3)]) is None


def test_an_agent_whose_offer_ran_out_is_not_asked_again() -> None:
    assert choose([agent("a"), agent("b", load=1)], exclude={"a"}) == "b"
    assert choose([agent("a")], exclude={"a"}) is None


def test_queue_key_from_intent_reason_and_language() -> None:
    skills = {"terminate_contract": "contracts", "complaint": "complaints"}
    assert queue_key_for("complex_matter", "terminate_contract", "de", skills) == ("contracts", "de")
    assert queue_key_for("customer_request", "request_human", "en", skills) == ("general", "en")
    assert queue_key_for("bot_stuck", None, "fr", skills) == ("general", "de")


HOURS = {"timezone": "Europe/Berlin", "days": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
         "closed_dates": ["2026-12-24"]}


def berlin(y, m, d, h, mi=0) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(y, m, d, h, mi, tzinfo=ZoneInfo("Europe/Berlin"))


@pytest.mark.parametrize(
    ("at", "open_"),
    [(berlin(2026, 11, 24, 9), True), (berlin(2026, 11, 24, 7, 59), False), (berlin(2026, 11, 24, 18), False),
     (berlin(2026, 11, 28, 10), False), (berlin(2026, 12, 24, 10), False), (berlin(2026, 3, 29, 10), False),
     (berlin(2026, 3, 30, 8), True)],
)
def test_business_hours(at: datetime, open_: bool) -> None:
    assert is_open(HOURS, at) is open_


def test_no_business_hours_means_always_open() -> None:
    assert is_open({}, datetime.now(UTC))


def test_next_opening_skips_weekend_and_closed_dates() -> None:
    assert next_opening(HOURS, berlin(2026, 11, 27, 19)) == berlin(2026, 11, 30, 8)  # Friday evening -> Monday
    assert next_opening(HOURS, berlin(2026, 12, 23, 18, 30)) == berlin(2026, 12, 25, 8)  # 24th closed


def test_closed_notice_says_when_and_invites_a_message() -> None:
    de = closed_notice("de", berlin(2026, 11, 30, 8), "Europe/Berlin")
    assert "Montag" in de and "08:00" in de and "Nachricht" in de
    en = closed_notice("en", berlin(2026, 11, 30, 8), "Europe/Berlin")
    assert "Monday" in en and "leave us a message" in en


def test_wait_estimates() -> None:
    assert estimate_wait(3, 0, 300, 0) is None
    assert estimate_wait(1, 2, 300, 1) == timedelta(minutes=1)
    assert estimate_wait(5, 2, 300, 0) == timedelta(seconds=750)


def test_queue_notice_in_both_languages() -> None:
    assert queue_notice("de", 2, timedelta(minutes=4)).startswith("Sie sind an Position 2 in der Warteschlange. Geschätzte Wartezeit: etwa 4 Minuten.")
    assert queue_notice("en", 1, None).startswith("You are number 1 in the queue. A member of our team")
    assert "abbrechen" in queue_notice("de", 1, None) and "cancel" in queue_notice("en", 1, None)


@pytest.mark.parametrize(("prev", "cur", "material"), [(None, 5, True), (3, 2, True), (2, 2, False), (10, 9, False), (10, 7, True)])
def test_position_changes_worth_telling(prev, cur, material) -> None:  # noqa: ANN001
    assert position_changed_materially(prev, cur) is material


@pytest.mark.parametrize("text", ["abbrechen", "Abbrechen!", "zurück zum Bot", "cancel", "never mind", "back to the bot", "/cancel_handover"])
def test_cancel_requests(text: str) -> None:
    assert is_cancel_request(text)


@pytest.mark.parametrize("text", ["I want to cancel my contract", "Vertrag abbrechen bitte", "Kündigung", "hallo"])
def test_not_cancel_requests(text: str) -> None:
    assert not is_cancel_request(text)
