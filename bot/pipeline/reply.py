"""After the engine call: what the engine's answer means for the conversation, then the handlers
that decide what the customer gets (in this order)."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from sqlalchemy import select, update

from bot.pipeline.turn import CARRIED_SLOTS, PENDING_HANDOVER, SKIP_CUSTOMER_NUMBER, Handler, Turn, open_handover
from connectors.base import Button, OutboundMessage
from handover import sentiment, triggers
from resonanz.texts import text as notice
from handover.state import bot_may_answer
from resonanz.settings import Settings
from resonanz.review.collect import group_key, review_reason
from resonanz.store.models import ChannelIdentity, Conversation, ReviewItem
from resonanz.store.vocabulary import Author, ReviewStatus

log = structlog.get_logger(__name__)

# Upset customer messages in a row (in conv.slots; never sent to the engine).
UPSET_STREAK = "_upset_streak"


def absorb(turn: Turn, session_key: tuple[int, int], settings: Settings) -> None:
    """Take the engine's answer into the conversation (slots, counters) and let the triggers
    decide whether it goes to a person. Needs `turn.engine`."""
    engine, conv, customer = turn.engine, turn.conv, turn.customer
    assert engine is not None
    if (conv.engine_session, conv.engine_turns) == session_key:
        conv.engine_turns += 1
    conv.active_loop = engine.active_loop
    slots = dict(conv.slots or {})
    for name in CARRIED_SLOTS:
        if engine.slots.get(name) is not None:
            slots[name] = engine.slots[name]
    conv.slots = slots
    if slots.get("customer_number") and customer.customer_number != slots["customer_number"]:
        customer.customer_number = str(slots["customer_number"])
    if slots.get("customer_name") and not customer.name:
        customer.name = str(slots["customer_name"])
    # Repeated anger: how many upset messages in a row (kept with the conversation, not sent to the engine).
    mood = sentiment.score(turn.text)
    streak = int(slots.get(UPSET_STREAK) or 0)
    streak = streak + 1 if settings.handover_upset_repeated and mood.frustration >= settings.handover_upset_repeated else 0
    if streak:
        slots[UPSET_STREAK] = streak
    else:
        slots.pop(UPSET_STREAK, None)
    conv.slots = slots
    if triggers.is_fallback(engine.intent, engine.confidence, settings.fallback_intents, settings.fallback_confidence,
                            engine.actions, settings.fallback_actions):
        conv.consecutive_fallbacks += 1
        conv.fallback_count += 1
    else:
        conv.consecutive_fallbacks = 0
    turn.msg.parse_data = engine.parse_summary
    turn.msg.intent, turn.msg.intent_confidence = engine.intent, engine.confidence  # for the reports
    turn.decision = triggers.decide(
        text=turn.text,
        intent=engine.intent,
        consecutive_fallbacks=conv.consecutive_fallbacks,
        handover_intents=settings.handover_intents,
        fallbacks_limit=settings.handover_after_fallbacks,
        frustration=mood.frustration,
        upset_threshold=settings.handover_upset_threshold,
        upset_streak=streak,
        upset_repeated_turns=settings.handover_upset_repeated_turns,
    )


class CollectMissed(Handler):
    """A message the bot did not understand, or understood with low confidence, goes to the review
    queue (resonanz.review) with its conversation; when the turn hands over, the conversation's
    missed messages are marked as handed over. Never answers the turn."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check(self, turn: Turn) -> bool:
        return self.settings.review_collect and turn.engine is not None

    async def handle(self, turn: Turn) -> bool:
        engine, conv, settings = turn.engine, turn.conv, self.settings
        assert engine is not None
        handed_over = turn.decision is not None and bot_may_answer(conv.state)
        reason = review_reason(
            text=turn.text if turn.text.startswith("/") else (turn.msg.text or ""), intent=engine.intent, confidence=engine.confidence,
            fallback=triggers.is_fallback(engine.intent, engine.confidence, settings.fallback_intents,
                                          settings.fallback_confidence),
            review_confidence=settings.review_confidence,
        )
        if handed_over:
            await turn.session.execute(
                update(ReviewItem).where(ReviewItem.conversation_id == conv.id, ReviewItem.status == ReviewStatus.OPEN)
                .values(handed_over=True))
        if reason is not None:
            text = turn.msg.text.strip()
            turn.session.add(ReviewItem(
                conversation_id=conv.id, customer_id=conv.customer_id, message_id=turn.msg.id, text=text,
                group_key=group_key(text), language=turn.language, reason=reason, intent=engine.intent,
                confidence=engine.confidence, handed_over=handed_over, status=ReviewStatus.OPEN, label_entities=[],
            ))
        return False


class EngineUnavailable(Handler):
    """No answer (engine down, too slow, empty reply): an apology, and a person if the bot owns it."""

    def check(self, turn: Turn) -> bool:
        return turn.engine is None

    async def handle(self, turn: Turn) -> bool:
        turn.msg.parse_data = {"error": turn.failure}
        turn.reply(notice("engine_unavailable", turn.language))
        if bot_may_answer(turn.conv.state):
            await open_handover(turn, reason="engine_unavailable", trigger=f"engine:{turn.failure}", intent=None,
                                actor="system", data={"detail": turn.failure})
        return True


class PersonTookOver(Handler):
    """A person took over while the engine was thinking: the bot stays silent."""

    def check(self, turn: Turn) -> bool:
        return not bot_may_answer(turn.conv.state)

    async def handle(self, turn: Turn) -> bool:
        log.info("bot.reply_dropped", conversation=turn.conv.id, state=turn.conv.state)
        return True


class PersonDeclined(Handler):
    """The model heard a request for a person in a message that declines one ("bitte keinen
    Menschen, ..."): no handover (the triggers ignore it), and not the engine's handover words
    either; the bot asks what it is about instead. Counts as not understood."""

    def check(self, turn: Turn) -> bool:
        return (turn.engine is not None and turn.decision is None and turn.engine.intent == "request_human"
                and triggers.declines_person(turn.text))

    async def handle(self, turn: Turn) -> bool:
        turn.conv.consecutive_fallbacks += 1
        turn.reply(notice("person_declined", turn.language))
        return True


class CustomerNumberFirst(Handler):
    """Before a complex matter goes to a person, ask once for the customer number if unknown;
    the next turn hands over whatever the answer (`PendingHandover`)."""

    def __init__(self, settings: Settings) -> None:
        # A bot without customer numbers never asks for one.
        self.enabled = settings.handover_collect_customer_number and settings.customer_number_pattern is not None

    def check(self, turn: Turn) -> bool:
        return (
            self.enabled
            and turn.decision is not None
            and turn.decision.reason == "complex_matter"
            and not (turn.conv.slots or {}).get("customer_number")
            and not triggers.asks_for_person(turn.text)  # someone who asks for a person is never delayed
        )

    async def handle(self, turn: Turn) -> bool:
        assert turn.decision is not None and turn.engine is not None
        turn.conv.slots = {**(turn.conv.slots or {}), PENDING_HANDOVER: {
            "reason": turn.decision.reason, "trigger": turn.decision.trigger, "intent": turn.engine.intent}}
        turn.reply(notice("ask_customer_number", turn.language),
                   buttons=(Button(notice("skip_customer_number", turn.language), SKIP_CUSTOMER_NUMBER),))
        return True


class Handover(Handler):
    """The triggers decided: a person takes it from here."""

    def check(self, turn: Turn) -> bool:
        return turn.decision is not None

    async def handle(self, turn: Turn) -> bool:
        decision, engine = turn.decision, turn.engine
        assert decision is not None and engine is not None
        turn.reply(notice("handover", turn.language))
        await open_handover(turn, reason=decision.reason, trigger=decision.trigger, intent=engine.intent, actor="bot",
                            data={"trigger": decision.trigger, "intent": engine.intent,
                                  "confidence": engine.confidence})
        return True


class PrivacyNotice(Handler):
    """A short privacy notice with a link (`privacy_url`), on the customer's first contact: the
    opening turn of their first conversation. Its own message, before any other reply."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.privacy_url

    def check(self, turn: Turn) -> bool:
        return bool(self.url) and turn.opening

    async def handle(self, turn: Turn) -> bool:
        earlier = await turn.session.scalar(
            select(Conversation.id).where(Conversation.customer_id == turn.customer.id, Conversation.id != turn.conv.id)
            .limit(1))
        if earlier is None:
            turn.reply(notice("privacy_notice", turn.language, url=self.url))
        return False


class ReturningCustomer(Handler):
    """A returning customer whose identity is linked or verified (several channels, a signed host
    identity, a known customer number) is greeted by name, in their language, when a new
    conversation opens."""

    def check(self, turn: Turn) -> bool:
        return turn.opening and bool(turn.customer.name)

    async def handle(self, turn: Turn) -> bool:
        customer = turn.customer
        earlier = await turn.session.scalar(
            select(Conversation.id).where(Conversation.customer_id == customer.id, Conversation.id != turn.conv.id)
            .limit(1))
        if earlier is None:
            return False
        identities = (await turn.session.execute(
            select(ChannelIdentity.channel, ChannelIdentity.customer_key).where(ChannelIdentity.customer_id == customer.id)
        )).all()
        linked = len(identities) > 1 or any((key or "").startswith("host:") for _, key in identities)
        if linked or customer.customer_number:
            turn.reply(notice("greeting.returning", turn.language, name=customer.name))
        return False


class BotReplies(Handler):
    """The engine's replies; with the first of a conversation, the choice of self-service or a person."""

    def __init__(self, settings: Settings, choice: Callable[[str], OutboundMessage]) -> None:
        self.offer_choice = settings.offer_choice_at_start
        self.choice = choice

    def check(self, turn: Turn) -> bool:
        return turn.engine is not None

    async def handle(self, turn: Turn) -> bool:
        assert turn.engine is not None
        turn.replies.extend(
            OutboundMessage(text=r.text, author=Author.BOT, buttons=r.buttons, attachments=r.attachments)
            for r in turn.engine.replies
        )
        if turn.opening and self.offer_choice:
            turn.replies.append(self.choice(turn.language))
        return True


def after_engine(settings: Settings, choice: Callable[[str], OutboundMessage]) -> list[Handler]:
    """In order; the last one always answers."""
    return [CollectMissed(settings), PrivacyNotice(settings), ReturningCustomer(), EngineUnavailable(), PersonTookOver(),
            PersonDeclined(), CustomerNumberFirst(settings), Handover(), BotReplies(settings, choice)]
