"""Handover decisions after a bot turn, as pure functions."""

import pytest

from handover.triggers import asks_for_person, decide, is_fallback

INTENTS = {"request_human": "customer_request", "complaint": "complex_matter"}


def _decide(text: str = "hallo", intent: str | None = "greet", fallbacks: int = 0, limit: int = 2):
    return decide(text=text, intent=intent, consecutive_fallbacks=fallbacks, handover_intents=INTENTS, fallbacks_limit=limit)


def test_handover_intent_decides_with_its_reason() -> None:
    d = _decide(intent="complaint")
    assert d is not None and d.reason == "complex_matter" and d.trigger == "intent:complaint"


def test_ordinary_turn_stays_with_the_bot() -> None:
    assert _decide(text="Wie sind Ihre Öffnungszeiten?", intent="opening_hours") is None


def test_fallbacks_in_a_row_hand_over_at_the_limit() -> None:
    assert _decide(intent="nlu_fallback", fallbacks=1) is None
    d = _decide(intent="nlu_fallback", fallbacks=2)
    assert d is not None and d.reason == "bot_stuck"


def test_fallback_limit_zero_disables_the_trigger() -> None:
    assert _decide(intent="nlu_fallback", fallbacks=9, limit=0) is None


@pytest.mark.parametrize(
    "text",
    [
        "I want to talk to a human",
        "can I speak with a real person",
        "human please",
        "agent please",
        "please call me",
        "Ich möchte mit einem Mitarbeiter sprechen",
        "Mitarbieter bitte",
        "echter Mensch bitte",
        "Kann ich mit einem Menschen reden?",
        "Bitte rufen Sie mich an",
        "ruf mich an",
        "Ich hätte gern einen Rückruf",
        "Kundenberater",
        "talk to someone",
    ],
)
def test_pattern_backstop_catches_requests_for_a_person(text: str) -> None:
    assert asks_for_person(text)
    d = _decide(text=text, intent="inform")  # even when the model misread it
    assert d is not None and d.reason == "customer_request" and d.trigger == "pattern"


@pytest.mark.parametrize("text", ["Mein Zählerstand ist 12345", "Is there a power outage in 10115?", "Danke!", "agenda"])
def test_pattern_backstop_ignores_ordinary_messages(text: str) -> None:
    assert not asks_for_person(text)


@pytest.mark.parametrize(
    ("intent", "confidence", "expected"),
    [("nlu_fallback", 0.9, True), (None, None, True), ("greet", 0.2, True), ("greet", 0.95, False)],
)
def test_is_fallback(intent: str | None, confidence: float | None, expected: bool) -> None:
    assert is_fallback(intent, confidence, ("nlu_fallback",), 0.4) is expected
