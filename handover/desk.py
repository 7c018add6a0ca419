"""The help desk: opening, routing, accepting, answering, transferring and closing handovers.

Every ownership change goes through `handover.service.transition` (versioned, with its event) in
the same transaction as the handover row, so a second gateway process never sees half of it.
Customer-facing messages go out through `emit` (stored first, then sent by the connector);
agent consoles learn of every change through the `Hub`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from connectors.base import Attachment, Button, OutboundMessage
from handover.context import build_context
from handover.hub import Hub
from handover.notices import notice
from handover.queries import agent_views, ensure_queues, get_or_create_queue, previous_agent_id, queue_position, average_handle_seconds, scope_of_handover
from handover.routing import Viewer, choose_agent, handover_scope, estimate_wait, merge_scopes, position_changed_materially, queue_key_for, queue_notice, is_open, next_opening, closed_notice, watch_scope
from handover.service import transition
from handover.state import State
from resonanz import texts
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, Conversation, Customer, Handover, Message, Queue, utcnow
from resonanz.supervisor import TaskSupervisor

log = structlog.get_logger(__name__)

Emit = Callable[..., Awaitable[list[dict[str, Any]]]]  # Dispatcher.emit(conversation_id, messages, guard=None)

OPEN_STATUSES = ("waiting", "offered")
LIVE_STATUSES = (*OPEN_STATUSES, "assigned")  # every other status (closed, returned, cancelled) is final
RATING_RE = re.compile(r"^\s*/?(?:rate\s*)?([1-5])\s*(?:sterne?|stars?|/\s*5)?\s*[.!]?\s*$", re.IGNORECASE)
NO_SURVEY_RESOLUTIONS = frozenset({"no_response", "abandoned"})


class HandoverError(Exception):
    """A request the desk refuses; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def check_action(h: Handover | None, agent: Agent, action: str) -> Handover:
    """Who may do what, in which state (the table in docs/handover.md, "Who may do what").
    Visibility (404 outside the agent's scope) is checked before, by `Desk._visible`.

    - a final handover (closed, returned, cancelled) refuses every action: 409;
    - accept: waiting or offered (to anyone: agents may pull from their queue);
    - reply and close: only its owner — an admin too must accept or take it first, so that the
      customer is never answered while being told their place in the queue;
    - transfer: its owner, or an admin in any live state (waiting, offered, assigned);
    - note: anyone who sees it, while it is live.
    """
    if h is None:
        raise HandoverError("no such handover", 404)
    if h.status not in LIVE_STATUSES:
        raise HandoverError(f"the handover is closed ({h.status}); it can no longer be changed")
    mine = h.status == "assigned" and h.agent_id == agent.id
    if action == "note" or mine and action != "accept":
        return h
    if action == "accept":
        if h.status in OPEN_STATUSES:
            return h
        raise HandoverError("already taken by another agent" if not mine else "you have already accepted it")
    if action == "transfer" and agent.role == "admin":
        return h
    if h.status in OPEN_STATUSES:
        verb = {"reply": "replying", "transfer": "transferring it", "close": "closing it"}[action]
        raise HandoverError(f"the handover is {h.status}: accept it before {verb}")
    if action == "close" and agent.role == "admin":
        return h
    raise HandoverError("this conversation is assigned to another agent", 403)


def restart_engine_session(conv: Conversation) -> None:
    """Back to the bot: a fresh engine session with the carried slots, not mid-dialogue."""
    conv.engine_session += 1
    conv.engine_turns = 0
    conv.active_loop = None
    conv.consecutive_fallbacks = 0


def parse_rating(text: str) -> int | None:
    m = RATING_RE.match(text)
    return int(m.group(1)) if m else None


class Desk:
    def __init__(self, *, db: Database, settings: Settings, hub: Hub, emit: Emit) -> None:
        self.db = db
        self.settings = settings
        self.hub = hub
        self.emit = emit
        self.tasks = TaskSupervisor("desk")
        # Set when this process makes an offer, so the sweeper looks at the new deadline.
        self._offers_changed = asyncio.Event()
        self._conversation_of: dict[str, str] = {}

    # --- opening --------------------------------------------------------------------------

    async def open_in(
        self,
        s: AsyncSession,
        conv: Conversation,
        *,
        reason: str,
        trigger: str,
        intent: str | None,
        actor: str,
        data: dict[str, Any] | None = None,
    ) -> Handover:
        """Inside the caller's transaction: move the conversation to the queue and record the
        handover with the context the agent will see."""
        await transition(s, conv, State.QUEUED, reason=reason, actor=actor, data=data or {"trigger": trigger})
        skill, language = queue_key_for(reason, intent, conv.language or "de", self.settings.handover_skills)
        queue = await get_or_create_queue(s, skill, language)
        await s.flush()
        context = await build_context(s, conv.id, reason=reason, trigger=trigger)
        ctx = context.to_dict()
        handover = Handover(
            conversation_id=conv.id,
            customer_id=conv.customer_id,
            queue_id=queue.id,
            reason=reason,
            trigger=trigger,
            status="waiting",
            context=ctx,
            summary=ctx.get("summary", ""),
            sentiment=(ctx.get("sentiment") or {}).get("latest"),
            declined_by=[],
            version=0,
        )
        s.add(handover)
        await s.flush()
        return handover

    async def after_open(self, handover_id: str) -> None:
        """After the opening transaction: tell consoles, offer it to an agent, tell the customer
        where they stand (or when a person will be there)."""
        self._publish_handover(await self.summary(handover_id))
        await self.route(handover_id)
        await self.tell_position(handover_id, force=True)

    # --- routing --------------------------------------------------------------------------

    async def route(self, handover_id: str) -> str | None:
        """Offer a waiting handover to the best agent; returns the agent's id, or None."""
        async with self.db.session() as s:
            h = await s.get(Handover, handover_id)
            if h is None or h.status != "waiting":
                return None
            queue = await s.get(Queue, h.queue_id) if h.queue_id else None
            if queue is None:
                return None
            chosen = choose_agent(
                await agent_views(s),
                skill=queue.skill,
                language=queue.language,
                previous_agent_id=await previous_agent_id(s, h.customer_id),
                exclude=list(h.declined_by or ()),
            )
            if chosen is None:
                return None
            now = utcnow()
            result = await s.execute(
                update(Handover)
                .where(Handover.id == h.id, Handover.version == h.version, Handover.status == "waiting")
                .values(status="offered", offered_agent_id=chosen.id, offered_at=now,
                        offer_expires_at=now + timedelta(seconds=self.settings.offer_timeout), version=h.version + 1)
            )
            if result.rowcount != 1:
                return None
        log.info("handover.offered", handover=handover_id, agent=chosen.id)
        self._offers_changed.set()
        self._publish_handover(await self.summary(handover_id))
        return chosen.id

    # The sweeper also looks this often for deadlines set by other gateway processes.
    SWEEP_SECONDS = 5.0

    def start(self) -> None:
        """Start the offer sweeper (supervised: it is restarted after a failure)."""
        self.tasks.spawn("offer sweeper", self.sweep_offers, retry=True)

    async def sweep_offers(self) -> None:
        """Expire offers whose deadline (`offer_expires_at`, in the database) has passed, whichever
        process made them; then sleep until the next deadline, a new offer, or SWEEP_SECONDS."""
        while True:
            self._offers_changed.clear()
            await self.expire_due_offers()
            async with self.db.session() as s:
                soonest = await s.scalar(select(func.min(Handover.offer_expires_at)).where(Handover.status == "offered"))
            wait = self.SWEEP_SECONDS
            if soonest is not None:
                wait = min(wait, max(0.0, (soonest - utcnow()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._offers_changed.wait(), wait)

    async def expire_due_offers(self) -> int:
        """Every offer past its deadline goes on to the next agent (an offer without a deadline,
        from before deadlines were stored, counts as past it)."""
        async with self.db.session() as s:
            due = (await s.execute(
                select(Handover.id, Handover.offered_agent_id).where(
                    Handover.status == "offered",
                    or_(Handover.offer_expires_at.is_(None), Handover.offer_expires_at <= utcnow()),
                ).order_by(Handover.offer_expires_at)
            )).all()
        expired = 0
        for handover_id, agent_id in due:
            expired += await self.expire_offer(handover_id, agent_id)
        return expired

    async def expire_offer(self, handover_id: str, agent_id: str) -> bool:
        """An unanswered offer goes back to the queue and on to the next agent."""
        async with self.db.session() as s:
            h = await s.get(Handover, handover_id)
            if h is None or h.status != "offered" or h.offered_agent_id != agent_id:
                return False
            result = await s.execute(
                update(Handover)
                .where(Handover.id == h.id, Handover.version == h.version)
                .values(
                    status="waiting",
                    offered_agent_id=None,
                    offer_expires_at=None,
                    declined_by=[*(h.declined_by or []), agent_id],
                    version=h.version + 1,
                )
            )
            if result.rowcount != 1:  # another process expired or answered it first
                return False
        log.info("handover.offer_expired", handover=handover_id, agent=agent_id)
        await self.route(handover_id)
        self._publish_handover(await self.summary(handover_id))
        return True

    async def recover(self) -> None:
        """At start-up: queues exist, and waiting handovers are offered. Offers keep their
        deadline in the database: a live peer's offer stays, an expired one is the sweeper's."""
        async with self.db.session() as s:
            await ensure_queues(s, set(self.settings.handover_skills.values()))
        await self.route_waiting()

    async def route_waiting(self) -> int:
        """Offer every waiting handover again (an agent came online, capacity freed up)."""
        async with self.db.session() as s:
            ids = (await s.scalars(select(Handover.id).where(Handover.status == "waiting").order_by(Handover.created_at))).all()
        offered = 0
        for hid in ids:
            offered += await self.route(hid) is not None
        return offered

    async def tell_position(self, handover_id: str, *, force: bool = False) -> None:
        """Tell a waiting customer their position and wait, again when it changed materially;
        outside business hours, when a person will be there."""
        async with self.db.session() as s:
            h = await s.get(Handover, handover_id)
            if h is None or h.status not in OPEN_STATUSES:
                return
            conv = await s.get(Conversation, h.conversation_id)
            queue = await s.get(Queue, h.queue_id) if h.queue_id else None
            language = (conv.language if conv else None) or "de"
            now = utcnow()
            if queue is not None and queue.business_hours and not is_open(queue.business_hours, now):
                if not force:
                    return
                opens = next_opening(queue.business_hours, now)
                text = closed_notice(language, opens, queue.business_hours.get("timezone", "Europe/Berlin"))
                h.last_position_told = 0
            else:
                position = await queue_position(s, h)
                if not force and not position_changed_materially(h.last_position_told, position):
                    return
                views = await agent_views(s)
                online = [v for v in views if v.status == "online"]
                free = sum(max(v.capacity - v.load, 0) for v in online)
                wait = estimate_wait(position, len(online), await average_handle_seconds(s), free)
                text = queue_notice(language, position, wait)
                h.last_position_told = position
            conversation_id = h.conversation_id
        await self.emit(conversation_id, [OutboundMessage(text=text, author="system")])

    async def _tell_queue(self, queue_id: str | None) -> None:
        """After the queue moved: tell those whose position changed materially (one pass)."""
        if queue_id is None:
            return
        notices: list[tuple[str, str]] = []
        async with self.db.session() as s:
            queue = await s.get(Queue, queue_id)
            if queue is None or (queue.business_hours and not is_open(queue.business_hours, utcnow())):
                return
            waiting = (await s.scalars(
                select(Handover).where(Handover.queue_id == queue_id, Handover.status.in_(OPEN_STATUSES))
                .order_by(Handover.created_at)
            )).all()
            changed = [(pos, h) for pos, h in enumerate(waiting, start=1)
                       if position_changed_materially(h.last_position_told, pos)]
            if not changed:
                return
            online = [v for v in await agent_views(s) if v.status == "online"]
            free = sum(max(v.capacity - v.load, 0) for v in online)
            avg = await average_handle_seconds(s)
            languages = dict((await s.execute(
                select(Conversation.id, Conversation.language).where(Conversation.id.in_([h.conversation_id for _, h in changed]))
            )).all())
            for pos, h in changed:
                h.last_position_told = pos
                wait = estimate_wait(pos, len(online), avg, free)
                notices.append((h.conversation_id, queue_notice(languages.get(h.conversation_id) or "de", pos, wait)))
        for conversation_id, text in notices:
            await self.emit(conversation_id, [OutboundMessage(text=text, author="system")])

    # --- agents' actions ------------------------------------------------------------------

    async def accept(self, handover_id: str, agent: Agent) -> dict[str, Any]:
        """Of two agents accepting at once, exactly one wins; the other gets HandoverError(409)."""
        async with self.db.session() as s:
            h = await self._visible(s, handover_id, agent)
            if h.status == "assigned":
                holder = await s.get(Agent, h.agent_id) if h.agent_id else None
                raise HandoverError(f"already taken by {holder.display_name}" if holder else "already taken by another agent")
            check_action(h, agent, "accept")
            result = await s.execute(
                update(Handover)
                .where(Handover.id == h.id, Handover.version == h.version, Handover.status.in_(OPEN_STATUSES))
                .values(status="assigned", agent_id=agent.id, accepted_at=utcnow(), offered_agent_id=None, version=h.version + 1)
            )
            if result.rowcount != 1:
                raise HandoverError("already taken by another agent")
            conv = await s.get(Conversation, h.conversation_id)
            await transition(s, conv, State.AGENT, reason="accepted", actor=f"agent:{agent.id}", data={"handover": h.id})
            queue_id, language, conversation_id = h.queue_id, conv.language, conv.id
        log.info("handover.accepted", handover=handover_id, agent=agent.id)
        await self.emit(conversation_id, [OutboundMessage(text=now_talking_to(language, agent), author="system")])
        summary = await self.summary(handover_id)
        self._publish_handover(summary)
        await self._tell_queue(queue_id)
        return summary

    async def reply(self, handover_id: str, agent: Agent, text: str, attachments: tuple[Attachment, ...] = ()) -> dict[str, Any]:
        """Send an agent's reply; the result carries its delivery status and, if it could not be
        sent (opted out, outside WhatsApp's 24-hour window, blocked), the reason. Only the
        handover's owner replies (`check_action`), checked in the transaction that stores it."""
        conversation_id = self._conversation_of.get(handover_id)
        if conversation_id is None:
            async with self.db.session() as s:
                conversation_id = check_action(await self._visible(s, handover_id, agent), agent, "reply").conversation_id
            if len(self._conversation_of) > 10_000:
                self._conversation_of.clear()
            self._conversation_of[handover_id] = conversation_id  # never changes for a handover

        [sent] = await self.emit(conversation_id, [OutboundMessage(text=text, author="agent", attachments=attachments)],
                                 guard=(handover_id, lambda h: check_action(h, agent, "reply")))
        return sent

    async def check_reply(self, handover_id: str, agent: Agent) -> None:
        """Refuse early (before a picture is stored) what `reply` would refuse."""
        async with self.db.session() as s:
            check_action(await self._visible(s, handover_id, agent), agent, "reply")

    async def note(self, handover_id: str, agent: Agent, text: str) -> dict[str, Any]:
        """An internal note: stored with the conversation, never sent to the customer."""
        async with self.db.session() as s:
            h = check_action(await self._visible(s, handover_id, agent), agent, "note")
            m = Message(
                conversation_id=h.conversation_id, customer_id=h.customer_id, channel="console",
                direction="note", author="agent", text=text, status="internal",
                metadata_={"agent_id": agent.id, "agent_name": agent.display_name}, created_at=utcnow(),
            )
            s.add(m)
            await s.flush()
            payload = message_json(m)
            conversation_id = h.conversation_id
        await self.conversation_message(conversation_id, payload)
        return payload

    async def transfer(self, handover_id: str, agent: Agent, *, to_agent_id: str | None, to_queue_id: str | None, note: str) -> dict[str, Any]:
        """To another agent (who then owns it, as after an accept) or to a queue (waiting again,
        the customer told their new position)."""
        if bool(to_agent_id) == bool(to_queue_id):
            raise HandoverError("give exactly one of agent_id or queue_id", 400)
        now = utcnow()
        async with self.db.session() as s:
            h = check_action(await self._visible(s, handover_id, agent), agent, "transfer")
            was = await scope_of_handover(s, h)
            was_open = h.status in OPEN_STATUSES
            conv = await s.get(Conversation, h.conversation_id)
            target: Agent | None = None
            if to_agent_id:
                target = await s.get(Agent, to_agent_id)
                if target is None or not target.active:
                    raise HandoverError("no such agent", 404)
                if h.status == "assigned" and h.agent_id == target.id:
                    raise HandoverError(f"the handover is already assigned to {target.display_name}")
                if target.status == "offline":
                    raise HandoverError(f"{target.display_name} is offline")
                values: dict[str, Any] = {"agent_id": target.id, "status": "assigned", "offered_agent_id": None,
                                          "accepted_at": h.accepted_at or now, "transfer_note": note, "version": h.version + 1}
                if conv.state != State.AGENT.value:
                    await transition(s, conv, State.AGENT, reason="transferred", actor=f"agent:{agent.id}", data={"handover": h.id, "agent": target.id})
            else:
                queue = await s.get(Queue, to_queue_id)
                if queue is None:
                    raise HandoverError("no such queue", 404)
                if was_open and queue.id == h.queue_id:
                    raise HandoverError(f"the handover is already waiting in {queue.name}")
                values = {"queue_id": queue.id, "agent_id": None, "offered_agent_id": None, "status": "waiting", "declined_by": [],
                          "last_position_told": None, "transfer_note": note, "version": h.version + 1}
                if conv.state != State.QUEUED.value:
                    await transition(s, conv, State.QUEUED, reason="transferred", actor=f"agent:{agent.id}", data={"queue": queue.id})
            result = await s.execute(update(Handover).where(Handover.id == h.id, Handover.version == h.version,
                                                            Handover.status == h.status).values(**values))
            if result.rowcount != 1:
                raise HandoverError("the handover changed meanwhile; try again")
            s.add(Message(
                conversation_id=conv.id, customer_id=conv.customer_id, channel="console", direction="note",
                author="agent", text=f"Transfer: {note}" if note else "Transfer", status="internal",
                metadata_={"agent_id": agent.id, "agent_name": agent.display_name, "transfer": values.get("agent_id") or to_queue_id},
                created_at=now,
            ))
            language, conversation_id, old_queue = conv.language, conv.id, h.queue_id
        log.info("handover.transferred", handover=handover_id, to_agent=to_agent_id, to_queue=to_queue_id)
        if to_queue_id:
            await self.route(handover_id)
            await self.tell_position(handover_id, force=True)
        elif was_open and target is not None:
            await self.emit(conversation_id, [OutboundMessage(text=now_talking_to(language, target), author="system")])
        summary = await self.summary(handover_id)
        self._publish_handover(summary, was=was)
        if was_open:
            await self._tell_queue(old_queue)
        return summary

    async def close(self, handover_id: str, agent: Agent, *, resolution: str, return_to_bot: bool, slots: dict[str, Any] | None = None) -> dict[str, Any]:
        survey = self.settings.satisfaction_survey and resolution not in NO_SURVEY_RESOLUTIONS
        async with self.db.session() as s:
            h = check_action(await self._visible(s, handover_id, agent), agent, "close")
            conv = await s.get(Conversation, h.conversation_id)
            customer = await s.get(Customer, conv.customer_id)
            now = utcnow()
            values: dict[str, Any] = {
                "status": "returned" if return_to_bot else "closed", "resolution": resolution,
                "closed_at": now, "version": h.version + 1,
            }
            if survey:
                values["survey_sent_at"] = now
            result = await s.execute(update(Handover).where(Handover.id == h.id, Handover.version == h.version, Handover.status == "assigned").values(**values))
            if result.rowcount != 1:
                raise HandoverError("the handover changed meanwhile; try again")
            recorded = {k: v for k, v in (slots or {}).items() if k in ("customer_number", "customer_name") and v}
            if recorded:
                conv.slots = {**(conv.slots or {}), **recorded}
                if recorded.get("customer_number"):
                    customer.customer_number = str(recorded["customer_number"])
            if return_to_bot:
                await transition(s, conv, State.BOT, reason="returned_to_bot", actor=f"agent:{agent.id}", data={"resolution": resolution})
                restart_engine_session(conv)
            else:
                await transition(s, conv, State.CLOSED, reason="closed", actor=f"agent:{agent.id}", data={"resolution": resolution})
            language = conv.language or "de"
            name = (conv.slots or {}).get("customer_name") or customer.name
            conversation_id = conv.id
        messages: list[OutboundMessage] = []
        if return_to_bot:
            messages.append(OutboundMessage(text=welcome_back(language, name), author="system"))
        if survey:
            messages.append(survey_message(language))
        if messages:
            await self.emit(conversation_id, messages)
        log.info("handover.closed", handover=handover_id, resolution=resolution, returned=return_to_bot)
        summary = await self.summary(handover_id)
        self._publish_handover(summary)
        await self.route_waiting()  # capacity freed up
        return summary

    async def take_over(self, conversation_id: str, agent: Agent) -> dict[str, Any]:
        """An agent watching a live bot conversation takes it over (the agents who may watch it:
        `watch_scope`; others get 404 as for a conversation that does not exist)."""
        async with self.db.session() as s:
            conv = await s.get(Conversation, conversation_id)
            if conv is None or not Viewer.of(agent).sees(await self._conversation_scope(s, conv)):
                raise HandoverError("no such conversation", 404)
            if conv.state != State.BOT.value:
                raise HandoverError(f"the conversation is {conv.state}, not with the bot")
            h = await self.open_in(s, conv, reason="agent_takeover", trigger=f"agent:{agent.id}", intent=None, actor=f"agent:{agent.id}")
            await transition(s, conv, State.AGENT, reason="accepted", actor=f"agent:{agent.id}", data={"handover": h.id})
            h.status, h.agent_id, h.accepted_at, h.version = "assigned", agent.id, utcnow(), h.version + 1
            handover_id, language = h.id, conv.language
        first = agent.display_name.split()[0] if agent.display_name else ""
        text = texts.text("agent_taking_over", language, name=first)
        await self.emit(conversation_id, [OutboundMessage(text=text, author="system")])
        summary = await self.summary(handover_id)
        self._publish_handover(summary)
        return summary

    # --- customers' actions ---------------------------------------------------------------

    async def cancel_in(self, s: AsyncSession, conv: Conversation) -> str | None:
        """The waiting customer goes back to the bot (inside the caller's transaction)."""
        h = await s.scalar(select(Handover).where(Handover.conversation_id == conv.id, Handover.status.in_(OPEN_STATUSES)))
        if h is None:
            return None
        h.status, h.closed_at, h.resolution, h.version = "cancelled", utcnow(), "cancelled_by_customer", h.version + 1
        await transition(s, conv, State.BOT, reason="customer_cancelled", actor="customer", data={"handover": h.id})
        restart_engine_session(conv)
        return h.id

    async def republish(self, handover_id: str) -> None:
        self._publish_handover(await self.summary(handover_id))

    async def rate_in(self, s: AsyncSession, conv: Conversation, rating: int) -> str | None:
        """Store a satisfaction answer on the conversation's last surveyed, unrated handover."""
        h = await s.scalar(
            select(Handover).where(Handover.conversation_id == conv.id, Handover.survey_sent_at.is_not(None), Handover.rating.is_(None))
            .order_by(Handover.closed_at.desc()).limit(1)
        )
        if h is None or h.survey_sent_at < utcnow() - timedelta(days=1):
            return None
        h.rating, h.rated_at = rating, utcnow()
        return h.id

    async def awaits_rating(self, s: AsyncSession, conversation_id: str) -> bool:
        h = await s.scalar(
            select(Handover.id).where(
                Handover.conversation_id == conversation_id, Handover.survey_sent_at > utcnow() - timedelta(days=1),
                Handover.rating.is_(None),
            ).limit(1)
        )
        return h is not None

    # --- live updates ---------------------------------------------------------------------

    async def message_changed(self, conversation_id: str, public_id: str) -> None:
        """A message's delivery status changed (failed, delivered, ...): consoles show it again."""
        async with self.db.session() as s:
            m = await s.scalar(select(Message).where(Message.public_id == public_id))
            if m is None:
                return
            payload = message_json(m)
        await self.conversation_message(conversation_id, payload)

    async def conversation_message(self, conversation_id: str, message: dict[str, Any]) -> None:
        """A stored message of a conversation, for the consoles (watching or handling it). The
        event carries its scope, read now (a transfer on another gateway process changes it), so
        that each console stream passes it only to the agents who may see it."""
        if not self.hub.subscribers:
            return  # nobody watches: no query
        async with self.db.session() as s:
            conv = await s.get(Conversation, conversation_id)
            if conv is None:
                return
            h = await self._latest_handover(s, conversation_id)
            scope = await self._conversation_scope(s, conv, h)
            handover_id = h.id if h is not None else None
        self.hub.publish({"type": "message", "handover_id": handover_id, "conversation_id": conversation_id,
                          "message": message, "scope": scope})

    customer_wrote = conversation_message

    @staticmethod
    async def _latest_handover(s: AsyncSession, conversation_id: str) -> Handover | None:
        return await s.scalar(
            select(Handover).where(Handover.conversation_id == conversation_id).order_by(Handover.created_at.desc()).limit(1)
        )

    async def _conversation_scope(self, s: AsyncSession, conv: Conversation, h: Handover | None = None) -> dict[str, Any]:
        """Who may see a conversation: those who see its latest handover, and while the bot has
        it, the agents who may watch it (`watch_scope`)."""
        if h is None:
            h = await self._latest_handover(s, conv.id)
        scopes = [await scope_of_handover(s, h)] if h is not None else []
        if conv.state == State.BOT.value:
            scopes.append(watch_scope(conv.language, self.settings.handover_skills))
        return merge_scopes(*scopes)

    # --- reading --------------------------------------------------------------------------

    async def summary(self, handover_id: str) -> dict[str, Any]:
        async with self.db.session() as s:
            h = await s.get(Handover, handover_id)
            if h is None:
                raise HandoverError("no such handover", 404)
            return await summary_json(s, h)

    @staticmethod
    async def _visible(s: AsyncSession, handover_id: str, agent: Agent) -> Handover:
        """The handover if the agent may see it; else 404, as if it did not exist (a 403 would
        confirm that it does)."""
        h = await s.get(Handover, handover_id)
        if h is None or not Viewer.of(agent).sees(await scope_of_handover(s, h)):
            raise HandoverError("no such handover", 404)
        return h

    def _publish_handover(self, summary: dict[str, Any], *, was: dict[str, Any] | None = None) -> None:
        """`was`: the scope before a transfer; consoles that saw it then and no longer may are told
        it is gone (`handover_removed`), nothing more."""
        event: dict[str, Any] = {"type": "handover", "handover": summary, "scope": summary_scope(summary)}
        if was is not None:
            event["was"] = was
        self.hub.publish(event)

    async def shutdown(self) -> None:
        await self.tasks.close()


# --- JSON shapes (the agent API's) ----------------------------------------------------------


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def message_json(m: Message) -> dict[str, Any]:
    parse = m.parse_data if m.direction == "in" and m.parse_data and "error" not in m.parse_data else None
    return {
        "id": m.public_id,
        "direction": m.direction,
        "author": m.author,
        "text": m.text,
        "buttons": m.buttons or [],
        "attachments": m.attachments or [],
        "timestamp": iso(m.created_at),
        "status": m.status,
        "error": m.error,
        "channel": m.channel,
        "agent_name": (m.metadata_ or {}).get("agent_name"),
        "location": (m.metadata_ or {}).get("location"),
        "parse": {"intent": parse.get("intent"), "confidence": parse.get("confidence"),
                  "entities": [{"entity": e.get("entity"), "value": e.get("value")} for e in parse.get("entities") or []]}
        if parse else None,
    }


async def summary_json(s: AsyncSession, h: Handover, *, viewer_id: str | None = None) -> dict[str, Any]:
    conv = await s.get(Conversation, h.conversation_id)
    customer = await s.get(Customer, h.customer_id)
    queue = await s.get(Queue, h.queue_id) if h.queue_id else None
    agent = await s.get(Agent, h.agent_id) if h.agent_id else None
    last = await s.scalar(
        select(Message).where(Message.conversation_id == h.conversation_id, Message.direction != "note")
        .order_by(Message.id.desc()).limit(1)
    )
    end = h.accepted_at or h.closed_at or utcnow()
    return {
        "id": h.id,
        "conversation_id": h.conversation_id,
        "status": h.status,
        "reason": h.reason,
        "trigger": h.trigger,
        "queue": {"id": queue.id, "name": queue.name, "skill": queue.skill, "language": queue.language} if queue else None,
        "customer": {"id": customer.id, "name": customer.name, "language": conv.language if conv else customer.language},
        "channel": conv.channel if conv else None,
        "conversation_state": conv.state if conv else None,
        "agent": {"id": agent.id, "display_name": agent.display_name} if agent else None,
        "offered_agent_id": h.offered_agent_id,
        "offered_to_me": viewer_id is not None and h.offered_agent_id == viewer_id,
        "created_at": iso(h.created_at),
        "waiting_seconds": max(0, int((end - h.created_at).total_seconds())),
        "last_message": {"text": last.text, "author": last.author, "timestamp": iso(last.created_at)} if last else None,
        "rating": h.rating,
        "resolution": h.resolution,
        "transfer_note": h.transfer_note,
        "sentiment": h.sentiment,
    }


def summary_scope(summary: dict[str, Any]) -> dict[str, Any]:
    queue = summary.get("queue") or {}
    return handover_scope(queue.get("skill"), queue.get("language"), (summary.get("agent") or {}).get("id"),
                          summary.get("offered_agent_id"))


def now_talking_to(language: str | None, agent: Agent) -> str:
    first = agent.display_name.split()[0] if agent.display_name else ""
    return texts.text("now_talking_to", language, name=first)


def welcome_back(language: str, name: str | None) -> str:
    return texts.text("welcome_back.named", language, name=name) if name else texts.text("welcome_back", language)


def survey_message(language: str) -> OutboundMessage:
    return OutboundMessage(text=texts.text("survey", language), author="system", buttons=tuple(Button(str(i), f"/rate {i}") for i in range(1, 6)))


def rating_thanks(language: str) -> str:
    return texts.text("rating_thanks", language)


def cancelled_notice(language: str) -> str:
    return texts.text("cancelled", language)


__all__ = ["Desk", "HandoverError", "message_json", "parse_rating", "summary_json", "notice"]
