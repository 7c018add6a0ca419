"""Opening a handover: the conversation goes to the queue with the context the agent will see."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from handover.context import build_context
from handover.offers import Offers
from handover.queries import get_or_create_queue
from handover.read_model import ReadModel
from handover.routing import queue_key_for
from handover.service import transition
from handover.state import State
from resonanz.settings import Settings
from resonanz.store.models import Conversation, Handover
from resonanz.store.vocabulary import HandoverStatus


class Opening:
    def __init__(self, *, settings: Settings, read: ReadModel, offers: Offers) -> None:
        self.settings = settings
        self.read = read
        self.offers = offers

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
            status=HandoverStatus.WAITING,
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
        await self.read.republish(handover_id)
        await self.offers.route(handover_id)
        await self.offers.tell_position(handover_id, force=True)
