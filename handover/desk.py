"""The help desk: one object over its services, for the dispatcher, the agent API and the app.

- `handover.opening`: a conversation goes to the queue, with the context the agent will see;
- `handover.offers`: routing, offers and their deadlines, queue positions told to customers;
- `handover.agent_commands`: accept, reply, note, transfer, close, take over;
- `handover.customer_commands`: cancel, rate (inside the turn's transaction);
- `handover.read_model`: the JSON agents see, and the console events.

Every ownership change goes through `handover.service.transition` (versioned, with its event) in
the same transaction as the handover row, so a second gateway process never sees half of it.
Customer-facing messages go out through `emit` (stored first, then sent by the connector);
agent consoles learn of every change through the `Hub`. Refusals are `resonanz.errors`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from connectors.base import Attachment
from handover import customer_commands
from handover.agent_commands import AgentCommands
from handover.customer_commands import parse_rating
from handover.hub import Hub
from handover.notices import callback_notice, cancelled_notice, rating_thanks
from handover.offers import Emit, Offers
from handover.opening import Opening
from handover.read_model import ReadModel, message_json, summary_json
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, Conversation, Handover


class Desk:
    def __init__(self, *, db: Database, settings: Settings, hub: Hub, emit: Emit,
                 signal: Callable[[str, str, dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self.db = db
        self.signal = signal
        self.settings = settings
        self.hub = hub
        self.emit = emit
        self.read = ReadModel(db=db, settings=settings, hub=hub)
        self.offers = Offers(db=db, settings=settings, read=self.read, emit=emit)
        self.opening = Opening(settings=settings, read=self.read, offers=self.offers)
        self.agents = AgentCommands(db=db, settings=settings, emit=emit, read=self.read, offers=self.offers,
                                    opening=self.opening)

    # --- opening (inside the turn's transaction, then after it) ------------------------------

    async def open_in(self, s: AsyncSession, conv: Conversation, *, reason: str, trigger: str, intent: str | None,
                      actor: str, data: dict[str, Any] | None = None) -> Handover:
        return await self.opening.open_in(s, conv, reason=reason, trigger=trigger, intent=intent, actor=actor, data=data)

    async def after_open(self, handover_id: str) -> None:
        await self.opening.after_open(handover_id)

    # --- offers and routing -------------------------------------------------------------------

    def start(self) -> None:
        self.offers.start()

    async def recover(self) -> None:
        await self.offers.recover()

    async def route(self, handover_id: str) -> str | None:
        return await self.offers.route(handover_id)

    async def route_waiting(self) -> int:
        return await self.offers.route_waiting()

    async def expire_offer(self, handover_id: str, agent_id: str) -> bool:
        return await self.offers.expire_offer(handover_id, agent_id)

    async def expire_due_offers(self) -> int:
        return await self.offers.expire_due_offers()

    async def tell_position(self, handover_id: str, *, force: bool = False) -> None:
        await self.offers.tell_position(handover_id, force=force)

    # --- agents' commands ---------------------------------------------------------------------

    async def accept(self, handover_id: str, agent: Agent) -> dict[str, Any]:
        return await self.agents.accept(handover_id, agent)

    async def reply(self, handover_id: str, agent: Agent, text: str, attachments: tuple[Attachment, ...] = ()) -> dict[str, Any]:
        return await self.agents.reply(handover_id, agent, text, attachments)

    async def check_reply(self, handover_id: str, agent: Agent) -> None:
        await self.agents.check_reply(handover_id, agent)

    async def typing(self, handover_id: str, agent: Agent) -> None:
        """The owner is typing: the customer sees it where the channel can show it."""
        conversation_id = await self.agents.check_reply(handover_id, agent)
        if self.signal is not None:
            await self.signal(conversation_id, "typing", {"name": agent.display_name})

    async def note(self, handover_id: str, agent: Agent, text: str) -> dict[str, Any]:
        return await self.agents.note(handover_id, agent, text)

    async def transfer(self, handover_id: str, agent: Agent, *, to_agent_id: str | None, to_queue_id: str | None,
                       note: str) -> dict[str, Any]:
        return await self.agents.transfer(handover_id, agent, to_agent_id=to_agent_id, to_queue_id=to_queue_id, note=note)

    async def close(self, handover_id: str, agent: Agent, *, resolution: str, return_to_bot: bool,
                    slots: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.agents.close(handover_id, agent, resolution=resolution, return_to_bot=return_to_bot, slots=slots)

    async def take_over(self, conversation_id: str, agent: Agent) -> dict[str, Any]:
        return await self.agents.take_over(conversation_id, agent)

    # --- customers' commands (inside the turn's transaction) ----------------------------------

    async def cancel_in(self, s: AsyncSession, conv: Conversation) -> str | None:
        return await customer_commands.cancel_in(s, conv)

    async def callback_in(self, s: AsyncSession, conv: Conversation, *, via: str, contact: str, message: str) -> str | None:
        return await customer_commands.callback_in(s, conv, via=via, contact=contact, message=message)

    async def rate_in(self, s: AsyncSession, conv: Conversation, rating: int) -> str | None:
        return await customer_commands.rate_in(s, conv, rating)

    async def awaits_rating(self, s: AsyncSession, conversation_id: str) -> bool:
        return await customer_commands.awaits_rating(s, conversation_id)

    # --- reading and live updates -------------------------------------------------------------

    async def summary(self, handover_id: str) -> dict[str, Any]:
        return await self.read.summary(handover_id)

    async def republish(self, handover_id: str) -> None:
        await self.read.republish(handover_id)

    async def message_changed(self, conversation_id: str, public_id: str) -> None:
        await self.read.message_changed(conversation_id, public_id)

    async def conversation_message(self, conversation_id: str, message: dict[str, Any]) -> None:
        await self.read.conversation_message(conversation_id, message)

    async def conversation_messages(self, conversation_id: str, messages: list[dict[str, Any]]) -> None:
        """Several at once (one read of the conversation's scope for all)."""
        await self.read.conversation_messages(conversation_id, messages)

    customer_wrote = conversation_message

    def customer_wrote_in_scope(self, conversation_id: str, message: dict[str, Any], handover_id: str | None,
                                scope: dict[str, Any]) -> None:
        """`customer_wrote`, with the scope read when the message was stored."""
        self.publish_messages(conversation_id, [message], handover_id, scope)

    def publish_messages(self, conversation_id: str, messages: list[dict[str, Any]], handover_id: str | None,
                         scope: dict[str, Any]) -> None:
        """`conversation_messages`, with the scope the caller read in the transaction that stored them."""
        self.read.publish_messages(conversation_id, messages, handover_id, scope)

    async def shutdown(self) -> None:
        await self.offers.shutdown()


# Callers of the desk's former single module (bot/dispatcher.py) import these from here.
__all__ = ["Desk", "callback_notice", "cancelled_notice", "message_json", "parse_rating", "rating_thanks", "summary_json"]
