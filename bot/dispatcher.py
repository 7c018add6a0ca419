"""The single entry for inbound messages.

    (connector: verify, normalise) -> de-duplicate -> persist -> resolve customer and conversation
    -> ownership check -> engine (state BOT only) -> handover triggers -> persist replies -> send

An inbound message is committed before the connector acknowledges it; its status moves from
`received` to `processed` only together with the replies it caused, so a crash in between is
repaired by `recover()` at the next start.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError

from bot.engine import EngineError, EngineTurn, RasaEngine
from bot.language import detect_language
from bot.outbox import Outbox
from bot.visibility import InternalMessageError, customer_visible, ensure_sendable, is_customer_visible, outbound_of
from connectors.base import (
    Attachment,
    Button,
    ChannelAddress,
    Connector,
    InboundMessage,
    OutboundMessage,
    match_button,
)
from handover import sentiment, triggers
from handover.desk import cancelled_notice, message_json, parse_rating, rating_thanks
from handover.notices import notice
from handover.routing import is_cancel_request
from handover.service import transition
from handover.state import State, bot_may_answer
from resonanz import texts
from resonanz.customer_number import CustomerNumbers
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, Customer, Handover, Message, utcnow
from resonanz.supervisor import TaskSupervisor

log = structlog.get_logger(__name__)

# Slots that survive a new engine session: the gateway is their memory.
CARRIED_SLOTS = ("customer_number", "customer_name")


PREFER_HUMAN = "/prefer_human"
SKIP_CUSTOMER_NUMBER = "/skip_customer_number"
# A complex matter waiting for the customer number before it goes to a person (in conv.slots).
PENDING_HANDOVER = "_pending_handover"


def choice_message(language: str) -> OutboundMessage:
    """Offered with the first answer of a new conversation: self-service or a person."""
    return OutboundMessage(
        text=texts.text("choice", language),
        author="system",
        buttons=(Button(texts.text("choice.bot", language), "/continue_with_bot"),
                 Button(texts.text("choice.person", language), "/request_human"),
                 Button(texts.text("choice.always_person", language), PREFER_HUMAN)),
    )


def engine_sender(conversation_id: str, session: int) -> str:
    """The engine-side sender id of one bounded engine session of a conversation."""
    return f"{conversation_id}-{session}"


def should_start_engine_session(turns: int, limit: int, active_loop: str | None) -> bool:
    """A new engine session after `limit` turns, but never in the middle of a form."""
    return limit > 0 and turns >= limit and active_loop is None


@dataclass(frozen=True)
class DispatchResult:
    conversation_id: str
    state: str
    replies: tuple[OutboundMessage, ...]
    message_id: str | None = None
    duplicate: bool = False


@dataclass(frozen=True)
class StoredMessage:
    """A message as the customer may see it: their own (`in`) or sent to them (`out`), never an
    internal note (refused at construction, so no customer-facing path can carry one)."""

    message_id: str
    direction: str
    author: str
    text: str
    buttons: tuple[Button, ...]
    attachments: tuple[Attachment, ...]
    created_at: Any
    status: str

    def __post_init__(self) -> None:
        if not is_customer_visible(self.direction):
            raise ValueError(f"message {self.message_id!r} is internal ({self.direction!r}) and not for the customer")

    def to_outbound(self) -> OutboundMessage:
        ensure_sendable(self.direction, self.message_id)
        return OutboundMessage(
            text=self.text,
            author=self.author,
            buttons=self.buttons,
            attachments=self.attachments,
            message_id=self.message_id,
            created_at=self.created_at,
        )


@dataclass(frozen=True)
class History:
    """The customer's view of their current conversation (no internal notes)."""

    conversation_id: str
    state: str
    messages: tuple[StoredMessage, ...]

    @property
    def outbound(self) -> tuple[StoredMessage, ...]:
        """What was sent to the customer (the REST channel's message list)."""
        return tuple(m for m in self.messages if m.direction == "out")

    @property
    def inbound(self) -> tuple[StoredMessage, ...]:
        return tuple(m for m in self.messages if m.direction == "in")


def _stored(m: Message) -> StoredMessage:
    return StoredMessage(
        message_id=m.public_id,
        direction=m.direction,
        author=m.author,
        text=m.text,
        buttons=tuple(Button(**b) for b in m.buttons or ()),
        attachments=tuple(Attachment(**a) for a in m.attachments or ()),
        created_at=m.created_at,
        status=m.status,
    )


class Dispatcher:
    def __init__(
        self,
        *,
        db: Database,
        engine: RasaEngine,
        settings: Settings,
        engine_ready: asyncio.Event,
        connectors: Mapping[str, Connector] | Callable[[], Mapping[str, Connector]],
    ) -> None:
        self.db = db
        self.engine = engine
        self.settings = settings
        self.engine_ready = engine_ready
        self._connectors = connectors
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self.outbox = Outbox(db=db, settings=settings, connectors=connectors)
        # Turns of acknowledged messages (`accept`), run after the webhook was answered.
        self.turns = TaskSupervisor("turns")
        # The help desk (handover.desk.Desk) is attached by the app factory; it needs `emit`.
        self.desk: Any = None

    # --- entry -------------------------------------------------------------------------------

    async def handle(self, inbound: InboundMessage) -> DispatchResult:
        """Persist, then process one inbound message. Returns the replies it caused."""
        stored = await self._store(inbound)
        if isinstance(stored, DispatchResult):
            return stored
        message_pk, conversation_id, public_id = stored
        return await self.process(conversation_id, message_pk, public_id)

    async def accept(self, inbound: InboundMessage) -> DispatchResult:
        """Persist one inbound message and return at once (the connector acknowledges it now); its
        turn runs afterwards, supervised, in order per conversation. Nothing is lost if the
        process dies first: the message is `received`, and `recover()` finishes it."""
        stored = await self._store(inbound)
        if isinstance(stored, DispatchResult):
            return stored
        message_pk, conversation_id, public_id = stored
        # Spawned in arrival order; the conversation's lock (FIFO) keeps that order for the turns.
        self.turns.spawn(f"turn {conversation_id}", lambda: self.process(conversation_id, message_pk, public_id),
                         retry=True)
        return DispatchResult(conversation_id=conversation_id, state="processing", replies=(), message_id=public_id)

    async def _store(self, inbound: InboundMessage) -> DispatchResult | tuple[int, str, str]:
        """Persist; a duplicate, or a message for the agent who owns the conversation, is finished
        here. Otherwise (message pk, conversation id, public id) of the turn still to run."""
        stored = await self._persist_inbound(inbound)
        if isinstance(stored, DispatchResult):
            log.info("inbound.duplicate", channel=inbound.channel, conversation=stored.conversation_id)
            return stored
        message_pk, conversation_id, public_id, to_agent = stored
        if to_agent is not None:
            # A person owns the conversation: stored and processed in one transaction; the
            # agent's console gets it now. Nothing else to decide (no engine, no bot reply).
            if self.desk is not None:
                await self.desk.customer_wrote(conversation_id, to_agent)
            return DispatchResult(conversation_id=conversation_id, state=State.AGENT.value, replies=(),
                                  message_id=public_id)
        return message_pk, conversation_id, public_id

    async def settled(self) -> None:
        """Wait until every accepted message's turn has run (tests and graceful shut-down)."""
        await self.turns.idle()

    async def close(self) -> None:
        await self.turns.close()

    async def process(self, conversation_id: str, message_pk: int, public_id: str) -> DispatchResult:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        after: list[Callable[[], Awaitable[None]]] = []
        async with lock:
            replies, state, address = await self._process_locked(conversation_id, message_pk, after)
            connector = self._connector(address.channel)
            if replies and connector is not None and connector.live_push:
                await self._push(connector, address, replies)
            elif replies and not (connector is not None and connector.pull):
                await self.outbox.flush(conversation_id)
            for follow_up in after:
                await follow_up()
        return DispatchResult(
            conversation_id=conversation_id, state=state, replies=tuple(replies), message_id=public_id
        )

    async def recover(self) -> int:
        """Process inbound messages that were acknowledged but not finished (crash, restart)."""
        async with self.db.session() as s:
            rows = (
                await s.execute(
                    select(Message.id, Message.conversation_id, Message.public_id)
                    .where(Message.direction == "in", Message.status == "received")
                    .order_by(Message.id)
                )
            ).all()
        for pk, conv_id, public_id in rows:
            await self.process(conv_id, pk, public_id)
        if rows:
            log.info("dispatcher.recovered", inbound=len(rows))
        return len(rows)

    # --- reading -----------------------------------------------------------------------------

    async def history(self, channel: str, sender_id: str) -> History | None:
        """The customer's view of the current (latest) conversation of a channel identity: their
        messages and what was sent to them, never internal notes."""
        async with self.db.session() as s:
            identity = await s.scalar(
                select(ChannelIdentity).where(
                    ChannelIdentity.channel == channel, ChannelIdentity.external_id == sender_id
                )
            )
            if identity is None:
                return None
            conv = await s.scalar(
                select(Conversation)
                .where(Conversation.customer_id == identity.customer_id)
                .order_by(Conversation.created_at.desc(), Conversation.id.desc())
                .limit(1)
            )
            if conv is None:
                return None
            msgs = (
                await s.scalars(
                    select(Message)
                    .where(Message.conversation_id == conv.id, customer_visible())
                    .order_by(Message.id)
                )
            ).all()
            return History(conv.id, conv.state, tuple(_stored(m) for m in msgs))

    async def delivery_status(self, channel: str, provider_id: str, status: str, error: str | None) -> bool:
        """A provider's delivery report for one of our messages (sent -> delivered -> read, or
        failed). Reports may arrive out of order; a status never moves backwards."""
        ours = {"queued": "sent", "accepted": "sent", "sending": "sent", "sent": "sent",
                "delivered": "delivered", "read": "read", "failed": "failed", "undelivered": "failed"}.get(status)
        if ours is None:
            return False
        rank = {"sent": 1, "delivered": 2, "read": 3}
        async with self.db.session() as s:
            m = await s.scalar(
                select(Message).where(
                    Message.channel == channel, Message.provider_message_id == provider_id, Message.direction == "out"
                )
            )
            if m is None:
                return False
            if ours == "failed":
                changed = m.status != "failed"
                m.status, m.error = "failed", error or f"provider reported {status}"
            else:
                changed = rank.get(ours, 0) > rank.get(m.status, 0) and m.status != "failed"
                if changed:
                    m.status = ours
            conversation_id, public_id = m.conversation_id, m.public_id
        if changed and self.desk is not None:
            await self.desk.message_changed(conversation_id, public_id)
        return True

    # --- persistence -------------------------------------------------------------------------

    async def _persist_inbound(
        self, inbound: InboundMessage
    ) -> tuple[int, str, str, dict[str, Any] | None] | DispatchResult:
        """Store the message (status `received`). The fourth element is set when the message
        needs no processing beyond being shown to the agent who owns the conversation: it is
        then stored as `processed` right away, and that is its console payload."""
        for attempt in range(3):
            try:
                async with self.db.session() as s:
                    # A repeated provider id is rare: the unique constraint catches it on the first
                    # attempt (IntegrityError), and the retry looks the earlier message up. Both are
                    # scoped to the sender: another sender's id is theirs, and so is its conversation.
                    if inbound.provider_message_id is not None and attempt > 0:
                        dup = await s.scalar(
                            select(Message).where(
                                Message.channel == inbound.channel,
                                Message.sender_id == inbound.sender_id,
                                Message.provider_message_id == inbound.provider_message_id,
                            )
                        )
                        if dup is not None:
                            conv = await s.get(Conversation, dup.conversation_id)
                            assert conv is not None
                            return DispatchResult(
                                conversation_id=conv.id,
                                state=conv.state,
                                replies=(),
                                message_id=dup.public_id,
                                duplicate=True,
                            )
                    customer, conv = await self._resolve(s, inbound)
                    metadata = dict(inbound.metadata)
                    if inbound.location is not None:
                        metadata["location"] = inbound.location.to_dict()
                    if inbound.control is not None:
                        metadata["control"] = inbound.control
                    msg = Message(
                        conversation_id=conv.id,
                        customer_id=customer.id,
                        channel=inbound.channel,
                        sender_id=inbound.sender_id,
                        provider_message_id=inbound.provider_message_id,
                        direction="in",
                        author="customer",
                        text=inbound.text,
                        attachments=[a.to_dict() for a in inbound.attachments],
                        metadata_=metadata,
                        status="received",
                        created_at=inbound.received_at or utcnow(),
                    )
                    to_agent = None
                    if conv.state == State.AGENT.value and inbound.control is None:
                        msg.status, msg.processed_at = "processed", utcnow()
                    s.add(msg)
                    await s.flush()
                    if msg.status == "processed":
                        to_agent = message_json(msg)
                    return msg.id, conv.id, msg.public_id, to_agent
            except IntegrityError:
                # A concurrent first message created the same identity, or the same provider id
                # arrived twice at once: the next attempt sees the other's row.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _resolve(self, s: Any, inbound: InboundMessage) -> tuple[Customer, Conversation]:
        address = inbound.address.to_dict()
        # One round trip: the identity, its customer and the customer's open conversation.
        row = (
            await s.execute(
                select(ChannelIdentity, Customer, Conversation)
                .join(Customer, Customer.id == ChannelIdentity.customer_id)
                .outerjoin(
                    Conversation,
                    (Conversation.customer_id == Customer.id)
                    & (Conversation.state != State.CLOSED.value),
                )
                .where(
                    ChannelIdentity.channel == inbound.channel,
                    ChannelIdentity.external_id == inbound.sender_id,
                )
                .order_by(Conversation.created_at.desc())
                .limit(1)
            )
        ).first()
        conv: Conversation | None = None
        if row is None:
            customer = await self._linked_customer(s, inbound)
            if customer is None:
                customer = Customer(name=inbound.display_name, language=inbound.language_hint)
                s.add(customer)
                await s.flush()
            s.add(
                ChannelIdentity(
                    customer_id=customer.id,
                    channel=inbound.channel,
                    external_id=inbound.sender_id,
                    address=address,
                    customer_key=inbound.customer_key,
                    opted_out=False,
                )
            )
            await s.flush()
            if conv is None:
                conv = await s.scalar(
                    select(Conversation)
                    .where(Conversation.customer_id == customer.id, Conversation.state != State.CLOSED.value)
                    .order_by(Conversation.created_at.desc())
                    .limit(1)
                )
        else:
            identity, customer, conv = row
            if identity.address != address:
                identity.address = address
            if inbound.control in ("opt_out", "opt_in"):
                identity.opted_out = inbound.control == "opt_out"
        if inbound.control == "opt_out" and row is None:
            await s.flush()
            await s.execute(
                update(ChannelIdentity)
                .where(ChannelIdentity.channel == inbound.channel, ChannelIdentity.external_id == inbound.sender_id)
                .values(opted_out=True)
            )
        if customer.name is None and inbound.display_name:
            customer.name = inbound.display_name
        if conv is None and row is not None and self.desk is not None:
            conv = await self._surveyed_conversation(s, customer.id, inbound.text)
        if conv is None:
            conv = Conversation(
                customer_id=customer.id,
                channel=inbound.channel,
                address=address,
                state=State.BOT.value,
                language=customer.language,
                slots={},
                engine_session=0,
                engine_turns=0,
                consecutive_fallbacks=0,
                fallback_count=0,
                version=0,
            )
            if customer.customer_number:
                conv.slots = {"customer_number": customer.customer_number, "customer_name": customer.name}
            s.add(conv)
            await s.flush()
        elif conv.channel != inbound.channel or conv.address != address:
            # The customer moved channel: answers follow them to where they wrote last.
            conv.channel = inbound.channel
            conv.address = address
        return customer, conv

    async def _linked_customer(self, s: Any, inbound: InboundMessage) -> Customer | None:
        """The customer another channel already knows under the same key (same phone number)."""
        if not inbound.customer_key:
            return None
        customer_id = await s.scalar(
            select(ChannelIdentity.customer_id)
            .where(ChannelIdentity.customer_key == inbound.customer_key)
            .order_by(ChannelIdentity.id)
            .limit(1)
        )
        return await s.get(Customer, customer_id) if customer_id is not None else None

    async def _surveyed_conversation(self, s: Any, customer_id: str, text: str) -> Conversation | None:
        """A rating answering the survey of a just-closed conversation belongs to that one."""
        if parse_rating(text) is None:
            return None
        latest = await s.scalar(
            select(Conversation).where(Conversation.customer_id == customer_id)
            .order_by(Conversation.created_at.desc()).limit(1)
        )
        if latest is None or latest.state != State.CLOSED.value:
            return None
        return latest if await self.desk.awaits_rating(s, latest.id) else None

    # --- processing --------------------------------------------------------------------------

    async def _process_locked(
        self, conversation_id: str, message_pk: int, after: list[Callable[[], Awaitable[None]]]
    ) -> tuple[list[OutboundMessage], str, ChannelAddress]:
        async with self.db.session() as s:
            conv, msg = (
                await s.execute(
                    select(Conversation, Message)
                    .join(Message, Message.conversation_id == Conversation.id)
                    .where(Message.id == message_pk)
                )
            ).one()
            address = ChannelAddress.from_dict(conv.address)
            if msg.status != "received":
                return [], conv.state, address  # already processed (recovery raced a live request)
            text = msg.text
            language = detect_language(text, conv.language)
            # "2" or an option's words, typed on a channel without buttons, mean that button.
            button = await self._typed_button(s, conv.id, msg.id, text)
            if button is not None:
                text = button.payload
            handled = await self._without_engine(s, conv, msg, text, language, after)
            if handled is not None:
                msg.status = "processed"
                msg.processed_at = utcnow()
                stored = self._add_outbound(s, conv, handled, self._initial_status(conv))
                await s.flush()
                return [outbound_of(m) for m in stored], conv.state, address
            if should_start_engine_session(
                conv.engine_turns, self.settings.engine_session_turns, conv.active_loop
            ):
                conv.engine_session += 1
                conv.engine_turns = 0
            sender = engine_sender(conv.id, conv.engine_session)
            set_slots = {"language": language}
            set_slots.update({k: v for k, v in (conv.slots or {}).items() if k in CARRIED_SLOTS and v is not None})
            session_key = (conv.engine_session, conv.engine_turns)

        turn: EngineTurn | None = None
        failure: str | None = None
        if not self.engine_ready.is_set():
            try:
                await asyncio.wait_for(self.engine_ready.wait(), self.settings.engine_startup_wait)
            except TimeoutError:
                failure = "engine_not_ready"
                log.warning("engine.not_ready", conversation=conversation_id)
        if failure is None:
            try:
                turn = await self.engine.turn(
                    sender, text, set_slots=set_slots, metadata={"conversation_id": conversation_id}
                )
            except EngineError as exc:
                failure = exc.reason
                log.warning("engine.failed", conversation=conversation_id, reason=exc.reason)

        async with self.db.session() as s:
            conv, msg, customer = (
                await s.execute(
                    select(Conversation, Message, Customer)
                    .join(Message, Message.conversation_id == Conversation.id)
                    .join(Customer, Customer.id == Conversation.customer_id)
                    .where(Message.id == message_pk)
                    .with_for_update(of=Conversation)
                )
            ).one()
            # Under the conversation's row lock, read afresh: another process (a recovery racing
            # a live request) may have finished this message while the engine was thinking.
            current = await s.scalar(
                select(Message.status).where(Message.id == message_pk).execution_options(populate_existing=True)
            )
            if current != "received":
                log.info("inbound.already_processed", conversation=conv.id)
                return [], conv.state, ChannelAddress.from_dict(conv.address)
            conv.language = language
            customer.language = language
            replies: list[OutboundMessage] = []
            if turn is None:
                msg.parse_data = {"error": failure}
                replies.append(OutboundMessage(text=notice("engine_unavailable", language), author="system"))
                if bot_may_answer(conv.state):
                    await self._open_handover(
                        s, conv, after, reason="engine_unavailable", trigger=f"engine:{failure}",
                        intent=None, actor="system", data={"detail": failure},
                    )
            else:
                self._absorb_turn(conv, customer, turn, session_key)
                msg.parse_data = turn.parse_summary
                decision = triggers.decide(
                    text=text,
                    intent=turn.intent,
                    consecutive_fallbacks=conv.consecutive_fallbacks,
                    handover_intents=self.settings.handover_intents,
                    fallbacks_limit=self.settings.handover_after_fallbacks,
                    frustration=sentiment.score(text).frustration,
                    upset_threshold=self.settings.handover_upset_threshold,
                )
                if not bot_may_answer(conv.state):
                    # A person took over while the engine was thinking: the bot stays silent.
                    log.info("bot.reply_dropped", conversation=conv.id, state=conv.state)
                elif decision is not None and self._collect_customer_number_first(conv, decision.reason, text):
                    conv.slots = {**(conv.slots or {}), PENDING_HANDOVER: {
                        "reason": decision.reason, "trigger": decision.trigger, "intent": turn.intent}}
                    replies.append(OutboundMessage(
                        text=notice("ask_customer_number", language), author="system",
                        buttons=(Button(notice("skip_customer_number", language), SKIP_CUSTOMER_NUMBER),),
                    ))
                elif decision is not None:
                    replies.append(OutboundMessage(text=notice("handover", language), author="system"))
                    await self._open_handover(
                        s, conv, after, reason=decision.reason, trigger=decision.trigger,
                        intent=turn.intent, actor="bot",
                        data={"trigger": decision.trigger, "intent": turn.intent, "confidence": turn.confidence},
                    )
                else:
                    replies.extend(
                        OutboundMessage(text=r.text, author="bot", buttons=r.buttons, attachments=r.attachments)
                        for r in turn.replies
                    )
                    if session_key == (0, 0) and self.settings.offer_choice_at_start:
                        replies.append(choice_message(language))
            msg.status = "processed"
            msg.processed_at = utcnow()
            stored = self._add_outbound(s, conv, replies, self._initial_status(conv))
            await s.flush()
            if self.desk is not None and self.desk.hub.subscribers:
                # Agents watching live bot conversations see each turn as it happens.
                watched = [message_json(msg), *(message_json(m) for m in stored)]
                watched_id = conv.id

                async def publish_turn() -> None:
                    for payload in watched:
                        await self.desk.conversation_message(watched_id, payload)

                after.append(publish_turn)
            state = conv.state
            address = ChannelAddress.from_dict(conv.address)
            return [outbound_of(m) for m in stored], state, address

    def _collect_customer_number_first(self, conv: Conversation, reason: str, text: str) -> bool:
        return (
            reason == "complex_matter"
            and self.settings.handover_collect_customer_number
            and self.settings.customer_number_pattern is not None  # a bot without customer numbers never asks
            and not (conv.slots or {}).get("customer_number")
            and not triggers.asks_for_person(text)  # someone who asks for a person is never delayed
        )

    async def _pending_handover(
        self, s: Any, conv: Conversation, text: str, language: str, after: list[Callable[[], Awaitable[None]]]
    ) -> list[OutboundMessage] | None:
        """The answer to "what is your customer number?": with or without it, hand over now."""
        slots = dict(conv.slots or {})
        pending = slots.pop(PENDING_HANDOVER, None)
        if not pending:
            return None
        found = CustomerNumbers(self.settings.customer_number_pattern).find(text)
        if found:
            slots["customer_number"] = found
            customer = await s.get(Customer, conv.customer_id)
            customer.customer_number = found
        conv.slots = slots
        conv.language = language
        await self._open_handover(
            s, conv, after, reason=pending["reason"], trigger=pending["trigger"], intent=pending.get("intent"),
            actor="bot", data={"trigger": pending["trigger"], "intent": pending.get("intent"),
                               "customer_number_given": bool(found)},
        )
        return [OutboundMessage(text=notice("handover", language), author="system")]

    def _initial_status(self, conv: Conversation) -> str:
        """A pull channel (REST) delivers by returning the replies, a live-push channel (web chat)
        by its sockets and history: sent once stored. Everything else goes through the outbox."""
        connector = self._connector(conv.address.get("channel", conv.channel))
        return "sent" if connector is not None and (connector.pull or connector.live_push) else "pending"

    @staticmethod
    async def _push(connector: Connector, address: ChannelAddress, messages: list[OutboundMessage]) -> None:
        for message in messages:
            if not isinstance(message, OutboundMessage):
                # Only OutboundMessage (made from an `out` row by outbound_of) may reach send().
                raise InternalMessageError(f"refusing to push {type(message).__name__} to {address.channel}")
            try:
                await connector.send(address, message)
            except Exception:  # best effort: the message is stored and comes with the history
                log.warning("outbound.push_failed", channel=address.channel)

    async def _open_handover(
        self, s: Any, conv: Conversation, after: list[Callable[[], Awaitable[None]]], *,
        reason: str, trigger: str, intent: str | None, actor: str, data: dict[str, Any],
    ) -> None:
        if self.desk is None:
            await transition(s, conv, State.QUEUED, reason=reason, actor=actor, data=data)
        else:
            handover = await self.desk.open_in(
                s, conv, reason=reason, trigger=trigger, intent=intent, actor=actor, data=data
            )
            handover_id = handover.id
            after.append(lambda: self.desk.after_open(handover_id))
        log.info("handover.queued", conversation=conv.id, reason=reason, trigger=trigger)

    async def _typed_button(self, s: Any, conversation_id: str, message_pk: int, text: str) -> Button | None:
        """The button of the latest answer (since the customer's previous message) that a typed
        reply picks, if any."""
        if len(text) > 80:
            return None
        recent = (
            await s.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id, Message.id < message_pk,
                       Message.direction.in_(("in", "out")))
                .order_by(Message.id.desc())
                .limit(6)
            )
        ).all()
        buttons: list[Button] = []
        for m in recent:
            if m.direction == "in":
                break
            if m.buttons and not buttons:
                buttons = [Button(**b) for b in m.buttons]
        return match_button(text, buttons)

    async def _without_engine(
        self, s: Any, conv: Conversation, msg: Message, text: str, language: str,
        after: list[Callable[[], Awaitable[None]]],
    ) -> list[OutboundMessage] | None:
        """Turns the gateway answers itself: channel controls (STOP, START, HELP), people own the
        conversation, a satisfaction rating, a waiting customer going back to the bot.
        None: the engine's turn."""
        control = (msg.metadata_ or {}).get("control")
        if control == "opt_out":
            s.add(Message(
                conversation_id=conv.id, customer_id=conv.customer_id, channel=msg.channel,
                direction="note", author="system", text=notice("opted_out_note", language),
                status="internal", created_at=utcnow(),
            ))
            return []
        if control == "opt_in":
            return [OutboundMessage(text=notice("opted_in", language), author="system")]
        if control == "help":
            return [OutboundMessage(text=notice("channel_help", language), author="system")]
        if conv.state == State.BOT.value and (conv.slots or {}).get(PENDING_HANDOVER):
            return await self._pending_handover(s, conv, text, language, after)
        if self.desk is not None and conv.state == State.BOT.value:
            # "Always a person": chosen now, or a standing preference for a new conversation.
            customer = await s.get(Customer, conv.customer_id)
            if text.strip() == PREFER_HUMAN:
                customer.preference = "human"
            fresh = conv.engine_session == 0 and conv.engine_turns == 0
            if text.strip() == PREFER_HUMAN or (fresh and customer.preference == "human"):
                conv.language = language
                await self._open_handover(
                    s, conv, after, reason="customer_preference", trigger="preference:human",
                    intent=None, actor="customer", data={"preference": "human"},
                )
                return [OutboundMessage(text=notice("handover", language), author="system")]
        if self.desk is not None:
            rating = parse_rating(text)
            rated = await self.desk.rate_in(s, conv, rating) if rating is not None else None
            if rated is not None:
                after.append(lambda: self.desk.republish(rated))
                return [OutboundMessage(text=rating_thanks(language), author="system")]
            if conv.state == State.QUEUED.value and is_cancel_request(text):
                if await self.desk.cancel_in(s, conv) is not None:
                    conv.language = language
                    return [OutboundMessage(text=cancelled_notice(language), author="system")]
            if not bot_may_answer(conv.state):
                payload = message_json(msg)
                conversation_id = conv.id
                after.append(lambda: self.desk.customer_wrote(conversation_id, payload))
        if conv.state == State.CLOSED.value:
            return []  # a late message to a closed conversation: kept, nothing to answer
        if not bot_may_answer(conv.state):
            return []
        return None

    def _absorb_turn(
        self, conv: Conversation, customer: Customer, turn: EngineTurn, session_key: tuple[int, int]
    ) -> None:
        if (conv.engine_session, conv.engine_turns) == session_key:
            conv.engine_turns += 1
        conv.active_loop = turn.active_loop
        slots = dict(conv.slots or {})
        for name in CARRIED_SLOTS:
            if turn.slots.get(name) is not None:
                slots[name] = turn.slots[name]
        conv.slots = slots
        if slots.get("customer_number") and customer.customer_number != slots["customer_number"]:
            customer.customer_number = str(slots["customer_number"])
        if slots.get("customer_name") and not customer.name:
            customer.name = str(slots["customer_name"])
        if triggers.is_fallback(
            turn.intent, turn.confidence, self.settings.fallback_intents, self.settings.fallback_confidence
        ):
            conv.consecutive_fallbacks += 1
            conv.fallback_count += 1
        else:
            conv.consecutive_fallbacks = 0

    def _add_outbound(
        self, s: Any, conv: Conversation, replies: list[OutboundMessage], status: str = "pending"
    ) -> list[Message]:
        rows = []
        # Stored as the channel will send them: one row per provider call (Connector.split).
        connector = self._connector(conv.channel)
        parts = [p for r in replies for p in (connector.split(r) if connector is not None else [r])]
        for r in parts:
            m = Message(
                conversation_id=conv.id,
                customer_id=conv.customer_id,
                channel=conv.channel,
                direction="out",
                author=r.author,
                text=r.text,
                buttons=[b.to_dict() for b in r.buttons],
                attachments=[a.to_dict() for a in r.attachments],
                status=status,
                attempts=1 if status in ("sent", "sending") else 0,
                created_at=utcnow(),
                # Stored already claimed: this process holds the lease until the send returns.
                **(self.outbox.lease() if status == "sending" else {}),
            )
            s.add(m)
            rows.append(m)
        return rows

    # --- outbound ----------------------------------------------------------------------------

    def _connector(self, channel: str) -> Connector | None:
        connectors = self._connectors() if callable(self._connectors) else self._connectors
        return connectors.get(channel)

    async def emit(
        self, conversation_id: str, messages: list[OutboundMessage],
        guard: tuple[str, Callable[[Handover | None], Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Store outbound messages of a conversation (system or agent), send them through the
        outbox, and tell watching agents. Returns the stored messages as the console shows them
        (with their delivery status, so an agent sees at once why a reply did not go out).
        `guard` is (handover id, check): the check sees that handover, read in the same
        transaction and round trip, and may raise to refuse (an agent's right to write, checked
        atomically with the write)."""
        async with self.db.session() as s:
            # One round trip: the conversation, whether earlier messages still wait, whether the
            # customer opted out on the conversation's channel, and the guarding handover.
            waiting = exists().where(
                Message.conversation_id == Conversation.id, Message.direction == "out",
                Message.status.in_(("pending", "sending")),
            )
            opted = exists().where(
                ChannelIdentity.customer_id == Conversation.customer_id,
                ChannelIdentity.channel == Conversation.channel, ChannelIdentity.opted_out.is_(True),
            )
            query = select(Conversation, waiting.label("busy"), opted.label("opted_out"))
            if guard is not None:
                query = query.add_columns(Handover).outerjoin(Handover, Handover.id == guard[0])
            row = (await s.execute(query.where(Conversation.id == conversation_id))).one()
            conv, busy, opted_out = row[0], row[1], row[2]
            if guard is not None:
                guard[1](row[3])
            initial = self._initial_status(conv)
            # Nothing earlier waiting: store the messages already claimed and send them at once.
            direct = initial == "pending" and not busy
            rows = self._add_outbound(s, conv, messages, "sending" if direct else initial)
            await s.flush()
            address = ChannelAddress.from_dict(conv.address)
        connector = self._connector(address.channel)
        if initial == "sent" and connector is not None and connector.live_push:
            await self._push(connector, address, [outbound_of(m) for m in rows])
        elif direct:
            outcomes = await self.outbox.send_claimed(conversation_id, rows, address, opted_out)
            for m in rows:
                m.status, m.error = outcomes.get(m.public_id, (m.status, m.error))
        elif initial == "pending":
            await self.outbox.flush(conversation_id)
            async with self.db.session() as s:
                pks = [m.id for m in rows]
                rows = list((await s.scalars(select(Message).where(Message.id.in_(pks)).order_by(Message.id))).all())
        payloads = [message_json(m) for m in rows]
        if self.desk is not None:
            for p in payloads:
                await self.desk.conversation_message(conversation_id, p)
        return payloads

