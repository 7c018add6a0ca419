"""Sentiment (explainable lexicon) and the extractive handover summary, as pure functions."""

import pytest

from handover.context import extract_summary
from handover.sentiment import score, trend


@pytest.mark.parametrize("text", ["Das ist eine Frechheit, ich bin wütend!", "This is useless, worst service ever", "SEIT WOCHEN KEINE ANTWORT"])
def test_upset_customers_score_negative_with_the_words_that_fired(text: str) -> None:
    s = score(text)
    assert s.value < 0 and s.frustration > 0 and s.matches


def test_neutral_text_scores_zero() -> None:
    s = score("Mein Zählerstand ist 12345")
    assert (s.value, s.frustration, s.matches) == (0.0, 0.0, ())


def test_negation_and_intensifiers() -> None:
    assert score("nicht schlecht").value > 0
    assert score("sehr schlecht").value < score("schlecht").value


def test_caps_and_repeated_punctuation_raise_frustration() -> None:
    calm, loud = score("warum dauert das so lange"), score("WARUM DAUERT DAS SO LANGE???")
    assert loud.frustration > calm.frustration and "CAPS" in loud.matches and "!!!" in loud.matches


def test_thanks_is_positive() -> None:
    assert score("Danke, super Hilfe!").value > 0 and score("thanks, great").value > 0


@pytest.mark.parametrize(("values", "expected"), [([0.2, 0.1, -0.4, -0.6], "worsening"), ([-0.6, -0.2, 0.3], "improving"), ([0.0, 0.05], "steady"), ([], "steady")])
def test_trend(values: list[float], expected: str) -> None:
    assert trend(values) == expected


def test_summary_in_german_says_want_done_and_open() -> None:
    text = extract_summary(language="de", intents=["greet", "submit_meter_reading", "request_human"],
                           quote="Mein Zähler zeigt komische Werte", slots={"customer_number": "40012345"},
                           reason="customer_request", active_loop="meter_reading_form")
    assert "Anliegen: mit einer Person sprechen, Zählerstand melden." in text
    assert "„Mein Zähler zeigt komische Werte“" in text
    assert "Kundennummer genannt (nicht verifiziert) 40012345" in text  # typed is not verified
    assert "Offen: Kunde möchte eine Person; offenes Formular meter_reading_form." in text


def test_summary_in_english() -> None:
    text = extract_summary(language="en", intents=["terminate_contract"], quote=None, slots={}, reason="complex_matter", active_loop=None)
    assert text == "Wants: terminate the contract. Open: a matter for a person."
