"""bot.language.detect_language: start language, switching only on clear messages, neutral input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.language import DEFAULT_LANGUAGE, detect_language, scores


@pytest.mark.parametrize(
    "text",
    [
        "Ich möchte meinen Zählerstand melden",
        "Hallo, ich habe keinen Strom",
        "Wann kommt meine Rechnung?",
        "Kann ich mit einem Mitarbeiter sprechen?",
        "Guten Tag",
        "Kündigung",
        "Abschlag ändern bitte",
        "grüß gott",
    ],
)
def test_german_first_message_starts_german(text: str) -> None:
    assert detect_language(text, None) == "de"


@pytest.mark.parametrize(
    "text",
    [
        "I want to submit my meter reading",
        "hello",
        "Is there a power outage in 10115?",
        "I want to talk to a human",
        "why is my bill so high",
        "thanks",
        "Can you call me please?",
    ],
)
def test_english_first_message_starts_english(text: str) -> None:
    assert detect_language(text, None) == "en"


@pytest.mark.parametrize("text", ["ok", "123456", "40012345", "/greet", "/request_human", "", "   ", "agent", "👍"])
def test_neutral_messages_keep_the_current_language(text: str) -> None:
    assert detect_language(text, "de") == "de"
    assert detect_language(text, "en") == "en"


@pytest.mark.parametrize("text", ["ok", "123456", "/affirm", "", "kWh", "agent"])
def test_nothing_detectable_and_no_current_defaults_to_german(text: str) -> None:
    assert detect_language(text, None) == DEFAULT_LANGUAGE == "de"


def test_button_payload_keeps_language_even_if_it_looks_english() -> None:
    assert detect_language('/inform{"number": "the thanks you"}', "de") == "de"


@pytest.mark.parametrize("text", ["thanks", "yes", "no", "hello", "Danke", "ja", "Hallo"])
def test_a_single_word_does_not_switch(text: str) -> None:
    current = "en" if detect_language(text, None) == "de" else "de"
    assert detect_language(text, current) == current


def test_clear_english_switches_a_german_conversation() -> None:
    assert detect_language("Sorry, can you please answer in English? I don't speak German", "de") == "en"
    assert detect_language("I want to talk to a human", "de") == "en"


def test_clear_german_switches_an_english_conversation() -> None:
    assert detect_language("Können Sie bitte auf Deutsch antworten?", "en") == "de"
    assert detect_language("Ich möchte meinen Zählerstand melden", "en") == "de"


def test_umlauts_and_eszett_count_for_german() -> None:
    de, en = scores("Straße Größe")
    assert de == 2 and en == 0


def test_scores_explain_the_decision() -> None:
    de, en = scores("the meter reading is 12345")
    assert en >= 3 and de == 0


@given(st.text(alphabet="0123456789 .,/-+€%", max_size=30), st.sampled_from(["de", "en"]))
def test_digits_and_punctuation_never_switch(text: str, current: str) -> None:
    assert detect_language(text, current) == current


@given(st.text(max_size=80), st.sampled_from([None, "de", "en"]))
def test_always_returns_de_or_en(text: str, current: str | None) -> None:
    assert detect_language(text, current) in ("de", "en")
