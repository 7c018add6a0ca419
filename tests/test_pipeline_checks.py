"""The pipeline's handlers decide with pure checks on the turn (no database, no engine), and the
chain stops at the first handler that answers."""

from __future__ import annotations

from typing import Any

import pytest

from bot.engine import EngineTurn
from bot.pipeline import Handler, Turn, run
from bot.pipeline.customer import AgentOwned, Cancel, ChannelControls, CustomersChoice, PendingHandover, Rating, before_engine
from bot.pipeline.reply import (BotReplies, CollectMissed, CustomerNumberFirst, EngineUnavailable, Handover, PersonDeclined,
                                PersonTookOver, PrivacyNotice, ReturningCustomer,
                                after_engine)
from bot.pipeline.turn import PENDING_HANDOVER, PREFER_HUMAN
from connectors.base import OutboundMessage
from handover.state import State
from handover.triggers import HandoverDecision
from resonanz.settings import Settings
from resonanz.store.models import Conversation, Customer, Message

SETTINGS = Settings()
DESK = object()  # the checks only ask whether there is a help desk


def turn(text: str = "Hallo", *, state: State = State.BOT, desk: Any = DESK, control: str | None = None,
         slots: dict[str, Any] | None = None, preference: str | None = None, fresh: bool = True) -> Turn:
    conv = Conversation(state=state, slots=slots or {}, engine_session=0, engine_turns=0 if fresh else 3)
    msg = Message(text=text, metadata_={"control": control} if control else {})
    return Turn(session=None, conv=conv, customer=Customer(preference=preference), msg=msg, text=text,
                language="de", desk=desk)


def engine_turn(intent: str = "greet") -> EngineTurn:
    return EngineTurn(replies=(), intent=intent, confidence=0.9, entities=(), slots={}, active_loop=None, parse_data={})


@pytest.mark.parametrize(("control", "expected"), [("opt_out", True), ("opt_in", True), ("help", True), (None, False)])
def test_channel_controls(control: str | None, expected: bool) -> None:
    assert ChannelControls().check(turn(control=control)) is expected


def test_a_pending_handover_waits_for_the_next_message_in_bot_state_only() -> None:
    pending = {PENDING_HANDOVER: {"reason": "complex_matter", "trigger": "intent:complaint"}}
    handler = PendingHandover(SETTINGS)
    assert handler.check(turn(slots=pending))
    assert not handler.check(turn(slots=pending, state=State.QUEUED))
    assert not handler.check(turn())


def test_the_customers_choice_of_a_person() -> None:
    handler = CustomersChoice()
    assert handler.check(turn(PREFER_HUMAN))
    assert handler.check(turn(preference="human"))  # a standing preference, new conversation
    assert not handler.check(turn(preference="human", fresh=False))
    assert not handler.check(turn(PREFER_HUMAN, desk=None))
    assert not handler.check(turn(PREFER_HUMAN, state=State.QUEUED))
    assert not handler.check(turn("Hallo"))


def test_a_rating_and_a_cancel_need_the_desk() -> None:
    assert Rating().check(turn("5")) and not Rating().check(turn("Hallo"))
    assert not Rating().check(turn("5", desk=None))
    assert Cancel().check(turn("abbrechen", state=State.QUEUED))
    assert not Cancel().check(turn("abbrechen", state=State.BOT))
    assert not Cancel().check(turn("Ich möchte meinen Vertrag abbrechen", state=State.QUEUED))
    assert not Cancel().check(turn("abbrechen", state=State.QUEUED, desk=None))


@pytest.mark.parametrize("state", [State.QUEUED, State.AGENT, State.CLOSED])
def test_without_the_bot_the_engine_is_not_asked(state: State) -> None:
    assert AgentOwned().check(turn(state=state)) and PersonTookOver().check(turn(state=state))


def test_in_bot_state_no_handler_before_the_engine_applies_to_plain_text() -> None:
    t = turn("Wann haben Sie geöffnet?")
    assert not [h for h in before_engine(SETTINGS) if h.check(t)]


def test_after_the_engine() -> None:
    t = turn()
    assert EngineUnavailable().check(t)  # no answer
    t.engine = engine_turn()
    assert not EngineUnavailable().check(t) and BotReplies(SETTINGS, lambda _: None).check(t)  # type: ignore[arg-type]
    assert not Handover().check(t)
    t.decision = HandoverDecision(reason="complex_matter", trigger="intent:complaint")
    assert Handover().check(t) and CustomerNumberFirst(SETTINGS).check(t)
    assert not CustomerNumberFirst(Settings(handover_collect_customer_number=False)).check(t)
    t.conv.slots = {"customer_number": "40000001"}
    assert not CustomerNumberFirst(SETTINGS).check(t)  # known already
    asking = turn("Ich will mit einem Menschen sprechen")
    asking.engine, asking.decision = engine_turn(), HandoverDecision(reason="complex_matter", trigger="pattern")
    assert not CustomerNumberFirst(SETTINGS).check(asking)  # someone who asks for a person is never delayed
    assert [type(h) for h in after_engine(SETTINGS, lambda _: None)] == [  # type: ignore[arg-type,return-value]
        CollectMissed, PrivacyNotice, ReturningCustomer, EngineUnavailable, PersonTookOver, PersonDeclined, CustomerNumberFirst,
        Handover, BotReplies]
    # "Bitte keinen Menschen, ..." read as request_human: no handover words from the engine.
    declining = turn("Bitte keinen Menschen, nur die Öffnungszeiten")
    declining.engine = engine_turn("request_human")
    assert PersonDeclined().check(declining) and not PersonDeclined().check(asking)
    # The privacy notice: only on a conversation's opening turn, and only with a link configured.
    with_url = Settings(privacy_url="https://example.org/privacy")
    assert not PrivacyNotice(SETTINGS).check(t) and not PrivacyNotice(with_url).check(t)
    t.opening = True
    assert PrivacyNotice(with_url).check(t) and not PrivacyNotice(SETTINGS).check(t)


class Probe(Handler):
    def __init__(self, applies: bool, answers: bool, seen: list[str], name: str) -> None:
        self.applies, self.answers, self.seen, self.name = applies, answers, seen, name

    def check(self, turn: Turn) -> bool:
        return self.applies

    async def handle(self, turn: Turn) -> bool:
        self.seen.append(self.name)
        return self.answers


async def test_the_chain_stops_at_the_first_handler_that_answers() -> None:
    seen: list[str] = []
    chain = [Probe(False, True, seen, "skipped"), Probe(True, False, seen, "passes on"),
             Probe(True, True, seen, "answers"), Probe(True, True, seen, "never")]
    assert await run(chain, turn()) is True
    assert seen == ["passes on", "answers"]
    assert await run([Probe(True, False, seen, "x")], turn()) is False


def test_replies_and_effects_collect_on_the_turn() -> None:
    t = turn()
    t.reply("eins")
    t.replies.append(OutboundMessage(text="zwei", author="bot"))
    assert [(r.text, r.author) for r in t.replies] == [("eins", "system"), ("zwei", "bot")]
