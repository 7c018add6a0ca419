"""Handlers before the engine: turns the gateway answers itself, in this order."""

from __future__ import annotations

from bot.pipeline.turn import PENDING_HANDOVER, PREFER_HUMAN, Handler, Turn, open_handover
from handover.desk import callback_notice, cancelled_notice, message_json, parse_rating, rating_thanks
from resonanz.texts import text as notice
from handover.routing import is_cancel_request
from handover.state import State, bot_may_answer
from resonanz.continuity import METADATA_KEY, Outcome, asks_to_continue, asks_to_forget, issue_in, links
from resonanz.customer_number import CustomerNumbers
from resonanz.settings import Settings
from sqlalchemy import select

from connectors.base import Button
from resonanz.store.models import Message, utcnow
from resonanz.store.vocabulary import Author, Direction, MessageStatus


class Continued(Handler):
    """A continue code was redeemed (or refused) where the message was stored (bot/intake.py):
    answered without the engine. Redeemed: the customer is welcomed back on the new channel and
    sees the last question again (a form goes on with its next answer); the agents see the switch
    in the transcript as a note. Refused: a clear message, nothing else."""

    def check(self, turn: Turn) -> bool:
        return isinstance((turn.msg.metadata_ or {}).get(METADATA_KEY), dict)

    async def handle(self, turn: Turn) -> bool:
        info = turn.msg.metadata_[METADATA_KEY]
        outcome = info.get("outcome")
        if outcome != Outcome.OK:
            turn.reply(notice(f"continue.{outcome}", turn.language))
            return True
        conv = turn.conv
        note = Message(
            conversation_id=conv.id, customer_id=conv.customer_id, channel=turn.msg.channel,
            direction=Direction.NOTE, author=Author.SYSTEM, status=MessageStatus.INTERNAL, created_at=utcnow(),
            text=notice("continue.note", conv.language, channel=turn.msg.channel, previous=info.get("from") or "-"),
        )
        turn.session.add(note)
        await turn.session.flush()
        turn.reply(notice("continue.done", turn.language))
        if conv.state in (State.BOT, State.AGENT):
            last = await turn.session.scalar(
                select(Message).where(Message.conversation_id == conv.id, Message.direction == Direction.OUT,
                                      Message.author.in_((Author.BOT, Author.AGENT)), Message.id < turn.msg.id)
                .order_by(Message.id.desc()).limit(1))
            if last is not None and last.text:
                turn.reply(last.text, author=last.author, buttons=[Button(**b) for b in last.buttons or ()])
        if turn.desk is not None:
            desk, conversation_id = turn.desk, conv.id
            shown = [message_json(turn.msg), message_json(note)]
            turn.after(lambda: desk.conversation_messages(conversation_id, shown))
        return True


class ContinueElsewhere(Handler):
    """"Continue on my phone": a continue code with its links, in words, on any channel."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check(self, turn: Turn) -> bool:
        return turn.conv.state in (State.BOT, State.QUEUED) and asks_to_continue(turn.text)

    async def handle(self, turn: Turn) -> bool:
        issued = await issue_in(turn.session, turn.conv, self.settings)
        where = links(issued.code, self.settings, turn.language)
        shown = "\n".join(f"{name}: {url}" for name, url in where.items())
        turn.reply(notice("continue.offer", turn.language, minutes=f"{self.settings.continue_code_minutes:g}",
                          links=f"\n{shown}\nCode: {issued.code}"))
        return True


class ForgetPreference(Handler):
    """The customer clears what is kept about them: "always a person" and the preferred channel."""

    def check(self, turn: Turn) -> bool:
        return asks_to_forget(turn.text)

    async def handle(self, turn: Turn) -> bool:
        turn.customer.preference = None
        turn.customer.preferred_channel = None
        turn.reply(notice("preference.forgotten", turn.language))
        return True


class ChannelControls(Handler):
    """STOP, START, HELP on a channel (the connector set `control`): answered without the engine.
    The opt-out itself is stored with the identity; here it leaves a note for the agents."""

    def check(self, turn: Turn) -> bool:
        return turn.control in ("opt_out", "opt_in", "help")

    async def handle(self, turn: Turn) -> bool:
        if turn.control == "opt_out":
            conv = turn.conv
            turn.session.add(Message(
                conversation_id=conv.id, customer_id=conv.customer_id, channel=turn.msg.channel,
                direction=Direction.NOTE, author=Author.SYSTEM, text=notice("opted_out_note", turn.language),
                status=MessageStatus.INTERNAL, created_at=utcnow(),
            ))
        elif turn.control == "opt_in":
            turn.reply(notice("opted_in", turn.language))
        else:
            turn.reply(notice("channel_help", turn.language))
        return True


class PendingHandover(Handler):
    """The answer to "what is your customer number?": with or without it, hand over now."""

    def __init__(self, settings: Settings) -> None:
        self.numbers = CustomerNumbers(settings.customer_number_pattern)

    def check(self, turn: Turn) -> bool:
        return turn.conv.state == State.BOT and bool((turn.conv.slots or {}).get(PENDING_HANDOVER))

    async def handle(self, turn: Turn) -> bool:
        conv = turn.conv
        slots = dict(conv.slots or {})
        pending = slots.pop(PENDING_HANDOVER)
        found = self.numbers.find(turn.text)
        if found:
            slots["customer_number"] = found
            turn.customer.customer_number = found
        conv.slots = slots
        conv.language = turn.language
        await open_handover(
            turn, reason=pending["reason"], trigger=pending["trigger"], intent=pending.get("intent"),
            actor="bot", data={"trigger": pending["trigger"], "intent": pending.get("intent"),
                               "customer_number_given": bool(found)},
        )
        turn.reply(notice("handover", turn.language))
        return True


class CustomersChoice(Handler):
    """"Always a person": chosen now, or a standing preference at the start of a new conversation."""

    def check(self, turn: Turn) -> bool:
        if turn.desk is None or turn.conv.state != State.BOT:
            return False
        fresh = turn.conv.engine_session == 0 and turn.conv.engine_turns == 0
        return turn.text.strip() == PREFER_HUMAN or (fresh and turn.customer.preference == "human")

    async def handle(self, turn: Turn) -> bool:
        turn.customer.preference = "human"
        turn.conv.language = turn.language
        await open_handover(turn, reason="customer_preference", trigger="preference:human", intent=None,
                            actor="customer", data={"preference": "human"})
        turn.reply(notice("handover", turn.language))
        return True


class Rating(Handler):
    """A satisfaction rating (1-5) answering the survey after a person closed the conversation."""

    def check(self, turn: Turn) -> bool:
        return turn.desk is not None and parse_rating(turn.text) is not None

    async def handle(self, turn: Turn) -> bool:
        desk = turn.desk
        rated = await desk.rate_in(turn.session, turn.conv, parse_rating(turn.text))
        if rated is None:
            return False  # no survey waits for it: just a number
        turn.after(lambda: desk.republish(rated))
        turn.reply(rating_thanks(turn.language))
        return True


class Cancel(Handler):
    """A waiting customer goes back to the bot."""

    def check(self, turn: Turn) -> bool:
        return turn.desk is not None and turn.conv.state == State.QUEUED and is_cancel_request(turn.text)

    async def handle(self, turn: Turn) -> bool:
        if await turn.desk.cancel_in(turn.session, turn.conv) is None:
            return False
        turn.conv.language = turn.language
        turn.reply(cancelled_notice(turn.language))
        return True


class CallbackRequest(Handler):
    """A waiting customer leaves a message for a callback or an e-mail (the channel checked the
    contact, `metadata["callback"]`): the handover leaves the queue with it, the customer is told
    what happens next. Not waiting (an agent took it meanwhile): an ordinary message."""

    def check(self, turn: Turn) -> bool:
        callback = (turn.msg.metadata_ or {}).get("callback")
        return turn.desk is not None and turn.conv.state == State.QUEUED and isinstance(callback, dict)

    async def handle(self, turn: Turn) -> bool:
        callback = turn.msg.metadata_["callback"]
        via, contact = str(callback.get("via")), str(callback.get("contact"))
        desk = turn.desk
        left = await desk.callback_in(turn.session, turn.conv, via=via, contact=contact, message=turn.msg.text or "")
        if left is None:
            return False
        turn.conv.language = turn.language
        conversation_id, payload = turn.conv.id, message_json(turn.msg)
        turn.after(lambda: desk.customer_wrote(conversation_id, payload))
        turn.after(lambda: desk.republish(left))
        turn.reply(callback_notice(turn.language, via, contact))
        return True


class AgentOwned(Handler):
    """Queued, with an agent, or closed: the bot stays silent; the agents' consoles get the message."""

    def check(self, turn: Turn) -> bool:
        return not bot_may_answer(turn.conv.state)

    async def handle(self, turn: Turn) -> bool:
        if turn.desk is not None:
            desk, conversation_id, payload = turn.desk, turn.conv.id, message_json(turn.msg)
            turn.after(lambda: desk.customer_wrote(conversation_id, payload))
        return True


def before_engine(settings: Settings) -> list[Handler]:
    """In order; when none answers, the engine has the turn."""
    return [Continued(), ChannelControls(), ForgetPreference(), ContinueElsewhere(settings), PendingHandover(settings), CustomersChoice(), Rating(), CallbackRequest(), Cancel(), AgentOwned()]
