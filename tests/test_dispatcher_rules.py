"""The dispatcher's routing decisions, as pure functions."""

import pytest

from bot.dispatcher import engine_sender, should_start_engine_session
from bot.engine import turn_from_wire
from connectors.base import Button, OutboundMessage
from handover.state import bot_may_answer


@pytest.mark.parametrize(
    ("turns", "limit", "loop", "expected"),
    [
        (11, 12, None, False),
        (12, 12, None, True),
        (30, 12, None, True),
        (12, 12, "meter_reading_form", False),  # never cut a form in half
        (99, 0, None, False),  # 0 disables bounding
    ],
)
def test_engine_session_rotation(turns: int, limit: int, loop: str | None, expected: bool) -> None:
    assert should_start_engine_session(turns, limit, loop) is expected


def test_engine_sender_is_distinct_per_session() -> None:
    assert engine_sender("abc", 0) != engine_sender("abc", 1)
    assert engine_sender("abc", 2).startswith("abc")


@pytest.mark.parametrize("state", ["queued", "agent", "closed"])
def test_engine_is_only_called_in_bot_state(state: str) -> None:
    assert bot_may_answer("bot") and not bot_may_answer(state)


def test_engine_wire_turn_keeps_replies_and_parse_data() -> None:
    turn = turn_from_wire(
        {
            "messages": [{"recipient_id": "x", "text": "Hallo!", "buttons": [{"title": "Ja", "payload": "/affirm"}]},
                         {"recipient_id": "x", "image": "https://example.org/a.png"}],
            "parse_data": {"intent": {"name": "greet", "confidence": 0.97}, "entities": [{"entity": "number", "value": "5"}],
                           "intent_ranking": [{"name": "greet", "confidence": 0.97}]},
            "slots": {"language": "de", "customer_number": None},
            "active_loop": None,
        }
    )
    assert turn.intent == "greet" and turn.confidence == 0.97
    assert turn.replies[0].buttons == (Button("Ja", "/affirm"),)
    assert turn.replies[1].attachments[0].url == "https://example.org/a.png"
    assert turn.parse_summary["slots"] == {"language": "de"}  # unset slots are left out
    assert turn.parse_summary["entities"][0]["value"] == "5"


def test_buttons_fall_back_to_numbered_text() -> None:
    m = OutboundMessage(text="Wie weiter?", author="bot", buttons=(Button("Mit einer Person sprechen", "/request_human"), Button("Weiter", "/continue_with_bot")))
    assert m.as_text_with_options() == "Wie weiter?\n\n1. Mit einer Person sprechen\n2. Weiter"
