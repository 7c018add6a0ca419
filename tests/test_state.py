"""The ownership state machine, as pure functions."""

import pytest

from handover.state import ALLOWED, InvalidTransition, State, bot_may_answer, check_transition


@pytest.mark.parametrize(
    ("current", "target"),
    [("bot", "queued"), ("queued", "agent"), ("agent", "bot"), ("agent", "closed"), ("queued", "bot"), ("bot", "closed")],
)
def test_allowed_transitions(current: str, target: str) -> None:
    assert check_transition(current, target) is State(target)


@pytest.mark.parametrize(("current", "target"), [("closed", "bot"), ("closed", "queued"), ("bot", "bot"), ("queued", "queued")])
def test_forbidden_transitions_raise(current: str, target: str) -> None:
    with pytest.raises(InvalidTransition) as err:
        check_transition(current, target)
    assert current in str(err.value) and target in str(err.value)


def test_closed_is_terminal() -> None:
    assert ALLOWED[State.CLOSED] == frozenset()


def test_unknown_state_is_rejected() -> None:
    with pytest.raises(ValueError):
        check_transition("bot", "limbo")


@pytest.mark.parametrize(("state", "expected"), [("bot", True), ("queued", False), ("agent", False), ("closed", False)])
def test_only_the_bot_state_lets_the_engine_answer(state: str, expected: bool) -> None:
    assert bot_may_answer(state) is expected
