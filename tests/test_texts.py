"""The one catalogue of system texts (resonanz/texts.py): complete in both languages, the same
placeholders in each, every key the code looks up exists, and the bot's own words come from its
configuration, not from framework code."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from resonanz import texts
from resonanz.settings import PROJECT_ROOT, Settings

FRAMEWORK = ("bot", "connectors", "handover", "resonanz")
# What customers write is recognised by lexicons and patterns in these modules; they are input, not
# system texts. connectors/testing.py holds the connector contract's sample messages.
LEXICONS = {"bot/language.py", "handover/sentiment.py", "handover/triggers.py", "handover/routing.py",
            "connectors/testing.py", "resonanz/texts.py", "resonanz/continuity.py"}


def framework_files() -> Iterator[Path]:
    for top in FRAMEWORK:
        for path in sorted((PROJECT_ROOT / top).rglob("*.py")):
            if "reference" not in path.relative_to(PROJECT_ROOT).parts:
                yield path


def test_every_text_has_german_and_english_with_the_same_placeholders() -> None:
    assert texts.problems(texts.CATALOGUE) == []
    assert texts.problems(Settings().texts, texts.CATALOGUE) == []  # the reference bot's, resonanz.yml


def test_the_checks_can_fail() -> None:
    assert texts.problems({"x": {"de": "Position {n}", "en": "number {m}"}}) != []
    assert texts.problems({"x": {"de": "nur Deutsch"}}) != []
    assert texts.problems({"handover": {"de": "{name}", "en": "{name}"}}, texts.CATALOGUE) != []


def test_placeholders_are_filled_and_unknown_languages_get_english() -> None:
    assert texts.text("queue.position", "de", position=3) == "Sie sind an Position 3 in der Warteschlange."
    assert texts.text("queue.position", "en", position=3) == "You are number 3 in the queue."
    assert texts.text("rating_thanks", None) == texts.text("rating_thanks", "de")
    assert texts.text("rating_thanks", "fr") == texts.text("rating_thanks", "en")


def test_every_key_the_framework_looks_up_exists() -> None:
    used: set[str] = set()
    for path in framework_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                    and (getattr(node.func, "id", None) == "notice" or getattr(node.func, "attr", None) == "text")):
                used.add(node.args[0].value)
    assert len(used) > 20  # the scan sees the look-ups
    assert used - set(texts.CATALOGUE) == set()


def test_no_german_system_text_outside_the_catalogue() -> None:
    german = re.compile(r"[äöüß]|\b(Sie|Ihr|Ihre|Ihnen|Bitte|nicht)\b")
    found = []
    for path in framework_files():
        rel = path.relative_to(PROJECT_ROOT).as_posix()
        if rel in LEXICONS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and german.search(node.value):
                found.append(f"{rel}:{node.lineno}: {node.value[:60]!r}")
    assert found == []


def test_no_reference_bot_words_in_framework_code() -> None:
    reference = re.compile(r"Stadtwerke|/greet\b|meter_reading|submit_meter_reading|tariff_advice|terminate_contract")
    static = [p for top in FRAMEWORK for ext in ("html", "js", "css") for p in (PROJECT_ROOT / top).rglob(f"*.{ext}")]
    assert static  # the scan sees the console's and the web chat's pages
    found = [f"{p.relative_to(PROJECT_ROOT)}:{n}" for p in [*framework_files(), *static]
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if reference.search(line)]
    assert found == []


def test_the_bot_configuration_replaces_and_adds_texts() -> None:
    try:
        texts.configure({"channel_help": {"de": "Hilfe der Testwerke", "en": "Testworks help"},
                         "intent.ask_weather": {"de": "Wetter", "en": "the weather"}})
        assert texts.text("channel_help", "de") == "Hilfe der Testwerke"
        assert texts.has("intent.ask_weather") and texts.text("intent.ask_weather", "en") == "the weather"
        assert texts.text("handover", "en") == texts.CATALOGUE["handover"]["en"]  # the rest stays
        with pytest.raises(ValueError, match="placeholders"):
            texts.configure({"queue.position": {"de": "Position", "en": "Position"}})
    finally:
        texts.configure(Settings().texts)


def test_a_broken_text_in_the_configuration_stops_the_start(tmp_path: Path) -> None:
    config = tmp_path / "resonanz.yml"
    config.write_text("texts:\n  handover: {de: nur Deutsch}\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="handover"):
        Settings(config_file=config)
