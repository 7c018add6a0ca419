"""Who owns a conversation: the pure state machine. No I/O here.

    BOT -> QUEUED -> AGENT -> BOT | CLOSED      (and QUEUED -> BOT when the customer cancels,
                                                 BOT/QUEUED -> CLOSED when a conversation ends)

While the state is QUEUED or AGENT the engine is never called.
"""

from __future__ import annotations

import enum


class State(enum.StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    AGENT = "agent"
    CLOSED = "closed"


ALLOWED: dict[State, frozenset[State]] = {
    State.BOT: frozenset({State.QUEUED, State.AGENT, State.CLOSED}),
    State.QUEUED: frozenset({State.AGENT, State.BOT, State.CLOSED}),
    State.AGENT: frozenset({State.BOT, State.QUEUED, State.CLOSED}),
    State.CLOSED: frozenset(),
}


class InvalidTransition(Exception):
    def __init__(self, current: State, target: State) -> None:
        super().__init__(f"cannot move a conversation from {current.value!r} to {target.value!r}")
        self.current = current
        self.target = target


def check_transition(current: State | str, target: State | str) -> State:
    """Return the target state if the move is allowed, else raise `InvalidTransition`."""
    cur, tgt = State(current), State(target)
    if tgt not in ALLOWED[cur]:
        raise InvalidTransition(cur, tgt)
    return tgt


def bot_may_answer(state: State | str) -> bool:
    """The engine is called only while the bot owns the conversation."""
    return State(state) is State.BOT
