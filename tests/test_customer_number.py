"""One customer-number pattern (resonanz/customer_number.py), configured once
(`customer_number_pattern`; the reference bot's in resonanz.yml)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from resonanz.customer_number import CustomerNumbers
from resonanz.settings import PROJECT_ROOT, Settings

REFERENCE = CustomerNumbers(Settings(config_file=PROJECT_ROOT / "resonanz.yml").customer_number_pattern)


def test_the_reference_pattern_finds_and_checks_numbers() -> None:
    assert REFERENCE.find("Meine Kundennummer ist 40012345, danke") == "40012345"
    assert REFERENCE.find("Zählerstand 123456, PLZ 10115") is None
    assert REFERENCE.find("400123456") is None  # nine digits are not a customer number
    assert REFERENCE.normalise(" 4001 2345 ") == "40012345"
    assert REFERENCE.normalise("50012345") is None
    assert REFERENCE.normalise("40012345x") is None


def test_without_a_pattern_nothing_is_a_customer_number(tmp_path: Path) -> None:
    numbers = CustomerNumbers(Settings(config_file=tmp_path / "none.yml").customer_number_pattern)
    assert not numbers.enabled
    assert numbers.find("40012345") is None and numbers.normalise("40012345") is None


def test_the_pattern_is_configurable() -> None:
    numbers = CustomerNumbers(Settings(customer_number_pattern=r"\bK-\d{4}\b").customer_number_pattern)
    assert numbers.find("Nummer K-1234 bitte") == "K-1234"
    assert numbers.normalise("40012345") is None


@pytest.mark.parametrize("pattern", ["(", ".*"])
def test_a_broken_pattern_stops_the_start(pattern: str) -> None:
    with pytest.raises(ValidationError, match="customer_number_pattern"):
        Settings(customer_number_pattern=pattern)


def test_the_reference_training_data_recognises_the_same_numbers() -> None:
    """The engine's regex feature (training_data/nlu.yml) is the reference bot's one other copy:
    it must accept exactly what the configured pattern accepts."""
    nlu = yaml.safe_load((PROJECT_ROOT / "training_data" / "nlu.yml").read_text(encoding="utf-8"))
    [entry] = [e for e in nlu["nlu"] if e.get("regex") == "customer_number"]
    engine = re.compile(entry["examples"].strip().removeprefix("- "))
    samples = ["40012345", "Nr. 40012345.", "400123456", "30012345", "4001234", "x40012345", "123456"]
    assert [bool(engine.search(s)) for s in samples] == [REFERENCE.find(s) is not None for s in samples]


async def test_a_bot_without_customer_numbers_hands_a_complex_matter_over_at_once(database, tmp_path: Path) -> None:  # noqa: ANN001
    from aiohttp.test_utils import TestClient, TestServer

    from resonanz.app import create_app
    from tests.support.scripted_engine import ScriptedEngine, serve_engine

    async with serve_engine(ScriptedEngine()) as engine_url:
        settings = Settings(DATABASE_URL=database.url, engine_url=engine_url, connectors=("rest",), var_dir=tmp_path,
                            customer_number_pattern=None, offer_choice_at_start=False)
        async with TestClient(TestServer(await create_app(settings, db=database))) as client:
            resp = await client.post("/webhooks/rest/webhook", json={"sender": "ulla", "message": "Ich will kündigen"})
            body = await resp.json()
    assert body["state"] == "queued"  # the reference bot would first ask for the customer number
    assert all(m.get("buttons") in (None, []) or m["buttons"][0]["payload"] != "/skip_customer_number"
               for m in body["messages"])
