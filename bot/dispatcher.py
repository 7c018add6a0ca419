"""The single entry for inbound messages: a short composition of the pipeline's parts.

    (connector: verify, normalise) -> bot.intake: de-duplicate, resolve customer and
    conversation, persist (`received`, leased: bot.leases) -> per conversation, in order:
    bot.pipeline handlers before the engine | the engine call | bot.pipeline handlers after it
    -> replies stored with the message `processed` (one transaction) -> bot.outbound: the
    channel's delivery -> the turn's effects

An inbound message is committed before the connector acknowledges it; its status moves from
`received` to `processed` only together with the replies it caused, so a crash in between is
repaired by `recover()` (at start-up and by a periodic sweep, for messages whose lease ran out).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from sqlalchemy import bindparam, select

from bot.conversation_locks import ConversationLocks
from bot.engine import EngineError, EngineTurn, RasaEngine
from bot.history import History, StoredMessage, read_history  # noqa: F401 - StoredMessage re-exported
from bot.intake import DispatchResult, Intake
from bot.language import detect_language
from bot.leases import InboundLeases
from bot.outbound import OutboundMessages
from bot.outbox import Outbox
from bot.pipeline import Turn, run
from bot.pipeline.customer import before_engine
from bot.pipeline.reply import absorb, after_engine
from bot.pipeline.turn import CARRIED_SLOTS, PREFER_HUMAN
from bot.visibility import outbound_of
from connectors.base import (
    Button,
    ChannelAddress,
    Connector,
    InboundMessage,
    OutboundMessage,
    match_button,
)
from handover.desk import message_json
from handover.read_model import current_scope
from handover.state import State
from resonanz import texts
from resonanz.continuity import ContinueLimiter
from resonanz.metrics import Metrics
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Conversation, Customer, Handover, Message, utcnow
from resonanz.store.vocabulary import Author, Direction, MessageStatus
from resonanz.supervisor import TaskSupervisor

log = structlog.get_logger(__name__)


def choice_message(language: str) -> OutboundMessage:
    """Offered with the first answer of a new conversation: self-service or a person."""
    return OutboundMessage(
        text=texts.text("choice", language),
        author=Author.SYSTEM,
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



def engine_message(text: str, attachments: list[Any] | None, photo_intent: str | None) -> tuple[str, dict[str, Any]]:
    """What the engine hears for a customer message: its text, or — for a message with a picture
    when the bot names a `photo_intent` — that intent as a payload, the caption and the pictures
    in the metadata (the bot's action reads them; Settings.photo_intent)."""
    images = [dict(a) for a in attachments or () if a.get("kind") == "image" and a.get("url")]
    if not images or not photo_intent:
        return text, {}
    return f"/{photo_intent}", {"attachments": images, "caption": text}

# The turn's statements, built once (building a statement costs about as much CPU as its round trip).
# The conversation's older messages still waiting (`_waiting_before`).
_WAITING_BEFORE = select(Message.id).where(
    Message.conversation_id == bindparam("conversation_id"), Message.direction == Direction.IN,
    Message.status == MessageStatus.RECEIVED, Message.id < bindparam("pk"),
).order_by(Message.id)
# A message with its conversation and customer; in the second transaction with the conversation's
# row locked FOR NO KEY UPDATE (new messages of the conversation need not wait for it).
_TURN_ROWS = (select(Conversation, Message, Customer)
              .join(Message, Message.conversation_id == Conversation.id)
              .join(Customer, Customer.id == Conversation.customer_id)
              .where(Message.id == bindparam("pk")))
_TURN_ROWS_LOCKED = _TURN_ROWS.with_for_update(of=Conversation, key_share=True)
_STATUS = select(Message.status).where(Message.id == bindparam("pk")).execution_options(populate_existing=True)
# The conversation's latest messages before one (`_typed_button`).
_RECENT = (select(Message)
           .where(Message.conversation_id == bindparam("conversation_id"), Message.id < bindparam("pk"),
                  Message.direction.in_((Direction.IN, Direction.OUT)))
           .order_by(Message.id.desc())
           .limit(6))


class Dispatcher:
    def __init__(
        self,
        *,
        db: Database,
        engine: RasaEngine,
        settings: Settings,
        engine_ready: asyncio.Event,
        connectors: Mapping[str, Connector] | Callable[[], Mapping[str, Connector]],
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self.engine = engine
        self.settings = settings
        self.engine_ready = engine_ready
        self._connectors = connectors
        # One turn of a conversation at a time, in this process and (PostgreSQL) across processes.
        self.locks = ConversationLocks(db, connections=settings.conversation_lock_connections,
                                       wait_seconds=settings.turn_lease_seconds * 5)
        self.outbox = Outbox(db=db, settings=settings, connectors=connectors, metrics=self.metrics)
        # This process's inbound messages, leased (by the outbox's owner id) while their turns live.
        self.leases = InboundLeases(db=db, settings=settings, owner=self.outbox.owner)
        self.continue_limiter = ContinueLimiter(settings)
        self.intake = Intake(db=db, leases=self.leases, desk=lambda: self.desk, limiter=self.continue_limiter)
        self.outbound = OutboundMessages(db=db, outbox=self.outbox, connectors=connectors, desk=lambda: self.desk,
                                         metrics=self.metrics)
        # Turns of acknowledged messages (`accept`), run after the webhook was answered.
        self.turns = TaskSupervisor("turns")
        self._sweeper = TaskSupervisor("turn sweeper")
        self._sweeping = False
        # The pipeline (bot/pipeline): handlers before the engine call and after it, in order.
        self.before_engine = before_engine(settings)
        self.after_engine = after_engine(settings, choice_message)
        # The help desk (handover.desk.Desk) is attached by the app factory; it needs `emit`.
        self.desk: Any = None
        # With `process_role` "intake" or "turns": the Redis channel over which intake processes
        # hand stored messages to turn processes (attached by the app factory).
        self.handoff: Any = None
        self._listener = TaskSupervisor("turn hand-off")

    # --- entry -------------------------------------------------------------------------------

    async def handle(self, inbound: InboundMessage) -> DispatchResult:
        """Persist, then process one inbound message. Returns the replies it caused."""
        stored = await self._store(inbound)
        if isinstance(stored, DispatchResult):
            return stored
        message_pk, conversation_id, public_id = stored
        try:
            return await self.process(conversation_id, message_pk, public_id)
        finally:
            self.leases.release(message_pk)

    async def accept(self, inbound: InboundMessage) -> DispatchResult:
        """Persist one inbound message and return at once (the connector acknowledges it now); its
        turn runs afterwards, supervised, in order per conversation. Nothing is lost if the
        process dies first: the message is `received`, and `recover()` finishes it.

        In an intake process (`Settings.process_role`), the message is stored unleased and handed
        to the turn processes instead: the webhook's answer then never waits behind turns."""
        if self.settings.process_role == "intake":
            return await self._hand_off(inbound)
        stored = await self._store(inbound)
        if isinstance(stored, DispatchResult):
            return stored
        message_pk, conversation_id, public_id = stored
        # Spawned in arrival order; the conversation's lock (FIFO) keeps that order for the turns.
        self._answer_later(message_pk, conversation_id, public_id)
        return DispatchResult(conversation_id=conversation_id, state="processing", replies=(), message_id=public_id)

    def _answer_later(self, message_pk: int, conversation_id: str, public_id: str) -> None:
        """Run the turn of a message this process holds, supervised; its lease is let go after."""
        task = self.turns.spawn(f"turn {conversation_id}",
                                lambda: self.process(conversation_id, message_pk, public_id), retry=True)
        task.add_done_callback(lambda _: self.leases.release(message_pk))

    async def _hand_off(self, inbound: InboundMessage) -> DispatchResult:
        stored = await self._store(inbound, leased=False)
        if isinstance(stored, DispatchResult):
            return stored
        message_pk, conversation_id, public_id = stored
        # Not waited for: a notice lost on the way is made good by the turn processes' sweep.
        self.handoff.publish({"type": "turn", "pk": message_pk, "conversation_id": conversation_id})
        return DispatchResult(conversation_id=conversation_id, state="processing", replies=(), message_id=public_id)

    async def _take(self, message_pk: int) -> None:
        """A turn process heard of a handed-off message: claim it, then answer it as `accept` would."""
        claimed = await self.leases.claim_one(message_pk)
        if claimed is None:
            return  # another turn process was first, or a sweep took it already
        pk, conversation_id, public_id = claimed
        self.leases.hold(pk)
        self._answer_later(pk, conversation_id, public_id)

    async def _listen(self) -> None:
        """A turn process: take each handed-off message; after a gap in the notices (Redis was
        away: `resync`), sweep for those missed."""
        async with self.handoff.subscribe() as notices:
            await self.recover()  # handed off before this process listened
            while True:
                notice = await notices.get()
                if notice.get("type") == "turn":
                    await self._take(int(notice["pk"]))
                elif notice.get("type") == "resync":
                    await self.recover()

    async def _store(self, inbound: InboundMessage, *, leased: bool = True) -> DispatchResult | tuple[int, str, str]:
        """Persist; a duplicate, or a message for the agent who owns the conversation, is finished
        here. Otherwise (message pk, conversation id, public id) of the turn still to run (leased
        by this process, held, unless `leased` is false)."""
        stored = await self.intake.store(inbound, leased=leased)
        if isinstance(stored, DispatchResult):
            log.info("inbound.duplicate", channel=inbound.channel, conversation=stored.conversation_id)
            return stored
        message_pk, conversation_id, public_id, to_agent = stored
        self.metrics.message_in(inbound.channel)
        if to_agent is not None:
            # A person owns the conversation: stored and processed in one transaction; the
            # agent's console gets it now. Nothing else to decide (no engine, no bot reply).
            if self.desk is not None:
                stored_at = time.perf_counter()
                if to_agent.scope is not None:
                    self.desk.customer_wrote_in_scope(conversation_id, to_agent.message, to_agent.handover_id,
                                                      to_agent.scope)
                else:
                    await self.desk.customer_wrote(conversation_id, to_agent.message)
                self.metrics.relay("to_agent", inbound.channel, stored_at)
            return DispatchResult(conversation_id=conversation_id, state=State.AGENT, replies=(),
                                  message_id=public_id)
        if leased:
            self.leases.hold(message_pk)  # stored leased; kept alive while the turn waits and runs
        return message_pk, conversation_id, public_id

    async def settled(self) -> None:
        """Wait until every accepted message's turn has run (tests and graceful shut-down)."""
        await self.turns.idle()

    def start(self) -> None:
        """Sweep now and then for inbound messages whose process is gone (supervised)."""
        if self._sweeping or self.settings.process_role == "intake":
            return  # an intake process answers no messages of others: the turn processes do
        self._sweeping = True
        if self.settings.process_role == "turns":
            self._listener.spawn("listen", self._listen, retry=True)

        async def sweep() -> None:
            while True:
                await asyncio.sleep(self.settings.turn_sweep_seconds)  # a period, not synchronisation
                await self.recover()

        self._sweeper.spawn("sweep", sweep, retry=True)

    async def close(self) -> None:
        await self._listener.close()
        await self._sweeper.close()
        await self.turns.close()
        await self.leases.close()
        await self.locks.close()
        await self.continue_limiter.close()

    async def process(self, conversation_id: str, message_pk: int, public_id: str) -> DispatchResult:
        """Answer message `message_pk` under its conversation's lock — after the conversation's
        older messages still waiting (`received`), oldest first, whichever process stored them:
        a customer's messages are answered in the order they arrived, even when they arrived on
        different gateways and this turn was woken for a later one."""
        async with self.locks.hold(conversation_id) as lock_connection:
            for earlier in await self._waiting_before(conversation_id, message_pk, lock_connection):
                log.info("inbound.answered_in_order", conversation=conversation_id)
                await self._turn(conversation_id, earlier)
            replies, state = await self._turn(conversation_id, message_pk)
        return DispatchResult(conversation_id=conversation_id, state=state, replies=tuple(replies),
                              message_id=public_id)

    async def _waiting_before(self, conversation_id: str, message_pk: int, connection: Any) -> list[int]:
        """The conversation's older messages still waiting, read on the lock's connection (one
        round trip, no transaction) when there is one."""
        params = {"conversation_id": conversation_id, "pk": message_pk}
        if connection is not None:
            return list((await connection.scalars(_WAITING_BEFORE, params)).all())
        async with self.db.session() as s:
            return list((await s.scalars(_WAITING_BEFORE, params)).all())

    async def _turn(self, conversation_id: str, message_pk: int) -> tuple[list[OutboundMessage], str]:
        """One message's turn, its delivery and its effects (the caller holds the conversation's lock)."""
        started = time.perf_counter()
        turn, state, address = await self._process_locked(conversation_id, message_pk)
        replies = [outbound_of(m) for m in turn.stored] if turn is not None else []
        if replies:
            await self.outbound.send(turn.staged)
        for effect in turn.effects if turn is not None else ():
            await effect()
        if turn is not None:
            self.metrics.turn(address.channel, started)
        return replies, state

    async def recover(self) -> int:
        """Claim and answer inbound messages that were stored but whose process is gone (crash,
        restart, a failed turn): in order per conversation, conversations in parallel. Returns
        how many were claimed. An intake process leaves this to the turn processes."""
        if self.settings.process_role == "intake":
            return 0
        claimed = await self.leases.claim()
        by_conversation: dict[str, list[tuple[int, str]]] = {}
        for pk, conversation_id, public_id in claimed:
            self.leases.hold(pk)
            by_conversation.setdefault(conversation_id, []).append((pk, public_id))

        async def answer(conversation_id: str, messages: list[tuple[int, str]]) -> None:
            try:
                for pk, public_id in messages:
                    await self.process(conversation_id, pk, public_id)
            except Exception:  # the rest stay leased to no turn: the next sweep takes them, in order
                log.exception("dispatcher.recovery_failed", conversation=conversation_id)
            finally:
                for pk, _ in messages:
                    self.leases.release(pk)

        await asyncio.gather(*(answer(c, m) for c, m in by_conversation.items()))
        if claimed:
            log.info("dispatcher.recovered", inbound=len(claimed))
        return len(claimed)

    # --- reading -----------------------------------------------------------------------------

    async def history(self, channel: str, sender_id: str) -> History | None:
        """The customer's view of the current (latest) conversation of a channel identity."""
        return await read_history(self.db, channel, sender_id)

    async def signal(self, conversation_id: str, kind: str, data: dict[str, Any]) -> None:
        """A passing sign ("typing") to the conversation's channel; never stored (Connector.signal)."""
        async with self.db.session() as s:
            conv = await s.get(Conversation, conversation_id)
        if conv is None:
            return
        address = ChannelAddress.from_dict(conv.address)
        connector = self.outbound.connector(address.channel)
        if connector is not None:
            await connector.signal(address, kind, data)

    async def delivery_status(self, channel: str, provider_id: str, status: str, error: str | None) -> bool:
        return await self.outbound.delivery_status(channel, provider_id, status, error)

    async def emit(
        self, conversation_id: str, messages: list[OutboundMessage],
        guard: tuple[str, Callable[[Handover | None], Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Store and deliver messages of a conversation from an agent or the system (bot.outbound)."""
        return await self.outbound.emit(conversation_id, messages, guard)

    # --- processing --------------------------------------------------------------------------

    async def _process_locked(self, conversation_id: str, message_pk: int) -> tuple[Turn | None, str, ChannelAddress]:
        """The turn of one stored message: the handlers before the engine, or the engine call
        between two transactions and the handlers after it. (turn or None when the message was
        already processed, the conversation's state, its address)."""
        async with self.db.session() as s:
            conv, msg, customer = (await s.execute(_TURN_ROWS, {"pk": message_pk})).one()
            address = ChannelAddress.from_dict(conv.address)
            if msg.status != MessageStatus.RECEIVED:
                return None, conv.state, address  # already processed (recovery raced a live request)
            text = msg.text
            # "2" or an option's words, typed on a channel without buttons, mean that button.
            button = await self._typed_button(s, conv.id, msg.id, text)
            turn = Turn(session=s, conv=conv, customer=customer, msg=msg, text=button.payload if button else text,
                        language=detect_language(text, conv.language), desk=self.desk)
            if await run(self.before_engine, turn):
                await self._finish(turn)
                await s.flush()
                return turn, conv.state, address
            if should_start_engine_session(conv.engine_turns, self.settings.engine_session_turns, conv.active_loop):
                conv.engine_session += 1
                conv.engine_turns = 0
            sender = engine_sender(conv.id, conv.engine_session)
            set_slots = {"language": turn.language}
            set_slots.update({k: v for k, v in (conv.slots or {}).items() if k in CARRIED_SLOTS and v is not None})
            session_key = (conv.engine_session, conv.engine_turns)
            turn.opening = session_key == (0, 0)

            engine_text, metadata = engine_message(turn.text, msg.attachments, self.settings.photo_intent)
            # Stable per message: a turn sent again (the pool's retry on another engine, or a
            # recovery after this process died) is not stored twice in the engine's tracker.
            message_id = msg.public_id

        turn.engine, turn.failure = await self._engine_turn(
            conversation_id, sender, engine_text, set_slots, metadata, message_id)

        async with self.db.session() as s:
            conv, msg, customer = (await s.execute(_TURN_ROWS_LOCKED, {"pk": message_pk})).one()
            # Under the conversation's row lock, read afresh: another process (a recovery racing
            # a live request) may have finished this message while the engine was thinking.
            current = await s.scalar(_STATUS, {"pk": message_pk})
            if current != MessageStatus.RECEIVED:
                log.info("inbound.already_processed", conversation=conv.id)
                return None, conv.state, ChannelAddress.from_dict(conv.address)
            turn.rebind(s, conv, customer, msg)
            conv.language = customer.language = turn.language
            if turn.engine is not None:
                absorb(turn, session_key, self.settings)
            await run(self.after_engine, turn)
            await self._finish(turn)
            await s.flush()
            if self.desk is not None and self.desk.hub.subscribers:
                # Agents watching live bot conversations see each turn as it happens, once it is
                # committed; who may see it is read now, in this transaction (one statement).
                watched = [message_json(msg), *(message_json(m) for m in turn.stored)]
                handover_id, scope = await current_scope(s, conv, self.settings.handover_skills)
                desk = self.desk

                async def publish_turn() -> None:
                    desk.publish_messages(conversation_id, watched, handover_id, scope)

                turn.after(publish_turn)
            return turn, conv.state, ChannelAddress.from_dict(conv.address)

    async def _finish(self, turn: Turn) -> None:
        """The message is processed, together with the replies it caused (one transaction)."""
        turn.msg.status = MessageStatus.PROCESSED
        turn.msg.processed_at = utcnow()
        turn.msg.lease_owner = turn.msg.lease_expires_at = None
        turn.staged = await self.outbound.stage(turn.session, turn.conv, turn.replies)
        turn.stored = turn.staged.rows

    async def _engine_turn(
        self, conversation_id: str, sender: str, text: str, set_slots: dict[str, Any],
        metadata: dict[str, Any] | None = None, message_id: str | None = None,
    ) -> tuple[EngineTurn | None, str | None]:
        """The engine's answer, or why there is none (outside any transaction: it may take long)."""
        if not self.engine_ready.is_set():
            try:
                await asyncio.wait_for(self.engine_ready.wait(), self.settings.engine_startup_wait)
            except TimeoutError:
                log.warning("engine.not_ready", conversation=conversation_id)
                return None, "engine_not_ready"
        try:
            turn = await self.engine.turn(sender, text, set_slots=set_slots, message_id=message_id,
                                          metadata={**(metadata or {}), "conversation_id": conversation_id})
        except EngineError as exc:
            log.warning("engine.failed", conversation=conversation_id, reason=exc.reason)
            return None, exc.reason
        return turn, None

    async def _typed_button(self, s: Any, conversation_id: str, message_pk: int, text: str) -> Button | None:
        """The button of the latest answer (since the customer's previous message) that a typed
        reply picks, if any."""
        if len(text) > 80:
            return None
        recent = (await s.scalars(_RECENT, {"conversation_id": conversation_id, "pk": message_pk})).all()
        buttons: list[Button] = []
        for m in recent:
            if m.direction == Direction.IN:
                break
            if m.buttons and not buttons:
                buttons = [Button(**b) for b in m.buttons]
        return match_button(text, buttons)
