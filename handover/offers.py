"""Offers and routing: a waiting handover is offered to the best agent (`handover.routing`
chooses); an unanswered offer expires by its deadline in the database (any process's sweeper
does it) and goes on to the next agent; waiting customers are told their place in the queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import func, or_, select, update

from connectors.base import OutboundMessage
from handover.queries import agent_views, average_handle_seconds, ensure_queues, previous_agent_id, queue_position
from handover.read_model import ReadModel
from handover.routing import (choose_agent, closed_notice, estimate_wait, is_open, next_opening,
                              position_changed_materially, queue_notice)
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Conversation, Handover, Queue, utcnow
from resonanz.store.vocabulary import AgentStatus, Author, HandoverStatus
from resonanz.supervisor import TaskSupervisor

log = structlog.get_logger(__name__)

Emit = Callable[..., Awaitable[list[dict[str, Any]]]]  # Dispatcher.emit(conversation_id, messages, guard=None)


class Offers:
    """Routing, offers and their deadlines, and the queue position customers are told."""

    # The sweeper also looks this often for deadlines set by other gateway processes.
    SWEEP_SECONDS = 5.0

    def __init__(self, *, db: Database, settings: Settings, read: ReadModel, emit: Emit) -> None:
        self.db = db
        self.settings = settings
        self.read = read
        self.emit = emit
        self.tasks = TaskSupervisor("desk")
        # Set when this process makes an offer, so the sweeper looks at the new deadline.
        self._offers_changed = asyncio.Event()

    async def route(self, handover_id: str) -> str | None:
        """Offer a waiting handover to the best agent; returns the agent's id, or None."""
        async with self.db.session() as s:
            h = await s.get(Handover, handover_id)
            if h is None or h.status != HandoverStatus.WAITING:
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
                .where(Handover.id == h.id, Handover.version == h.version, Handover.status == HandoverStatus.WAITING)
                .values(status=HandoverStatus.OFFERED, offered_agent_id=chosen.id, offered_at=now,
                        offer_expires_at=now + timedelta(seconds=self.settings.offer_timeout), version=h.version + 1)
            )
            if result.rowcount != 1:
                return None
        log.info("handover.offered", handover=handover_id, agent=chosen.id)
        self._offers_changed.set()
        await self.read.republish(handover_id)
        return chosen.id

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
                soonest = await s.scalar(select(func.min(Handover.offer_expires_at)).where(Handover.status == HandoverStatus.OFFERED))
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
                    Handover.status == HandoverStatus.OFFERED,
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
            if h is None or h.status != HandoverStatus.OFFERED or h.offered_agent_id != agent_id:
                return False
            result = await s.execute(
                update(Handover)
                .where(Handover.id == h.id, Handover.version == h.version)
                .values(
                    status=HandoverStatus.WAITING,
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
        await self.read.republish(handover_id)
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
            ids = (await s.scalars(
                select(Handover.id).where(Handover.status == HandoverStatus.WAITING).order_by(Handover.created_at)
            )).all()
        offered = 0
        for hid in ids:
            offered += await self.route(hid) is not None
        return offered

    async def tell_position(self, handover_id: str, *, force: bool = False) -> None:
        """Tell a waiting customer their position and wait, again when it changed materially;
        outside business hours, when a person will be there."""
        async with self.db.session() as s:
            h = await s.get(Handover, handover_id)
            if h is None or h.status not in HandoverStatus.queued():
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
                online = [v for v in views if v.status == AgentStatus.ONLINE]
                free = sum(max(v.capacity - v.load, 0) for v in online)
                wait = estimate_wait(position, len(online), await average_handle_seconds(s), free)
                text = queue_notice(language, position, wait)
                h.last_position_told = position
            conversation_id = h.conversation_id
        await self.emit(conversation_id, [OutboundMessage(text=text, author=Author.SYSTEM)])

    async def tell_queue(self, queue_id: str | None) -> None:
        """After the queue moved: tell those whose position changed materially (one pass)."""
        if queue_id is None:
            return
        notices: list[tuple[str, str]] = []
        async with self.db.session() as s:
            queue = await s.get(Queue, queue_id)
            if queue is None or (queue.business_hours and not is_open(queue.business_hours, utcnow())):
                return
            waiting = (await s.scalars(
                select(Handover).where(Handover.queue_id == queue_id, Handover.status.in_(HandoverStatus.queued()))
                .order_by(Handover.created_at)
            )).all()
            changed = [(pos, h) for pos, h in enumerate(waiting, start=1)
                       if position_changed_materially(h.last_position_told, pos)]
            if not changed:
                return
            online = [v for v in await agent_views(s) if v.status == AgentStatus.ONLINE]
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
            await self.emit(conversation_id, [OutboundMessage(text=text, author=Author.SYSTEM)])

    async def shutdown(self) -> None:
        await self.tasks.close()
