"""One customer across channels, put right by people: merge two customers (the survivor keeps
everything of both) and split a wrongly linked channel identity off into a new customer.

Admins may merge and split any customer; an agent only customers whose conversations they have
handled (a handover assigned to them). Each merge and split is an entry in the data access log
(`data_access_log`, readable by admins): merge on the survivor with the merged customer's id as
subject, split on the customer the identity left with the new customer's id as subject.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from handover.agent_commands import check_action
from handover.read_model import identities as identities_of
from handover.read_model import identity_json, visible_handover
from resonanz import texts
from resonanz.errors import Conflict, Forbidden, Invalid, NotFound
from resonanz.store import Database
from resonanz.store.models import (
    Agent,
    ChannelIdentity,
    ContinueCode,
    Conversation,
    Customer,
    DataAccess,
    Handover,
    Message,
    utcnow,
)
from resonanz.store.vocabulary import AgentRole, Author, DataAction, Direction, MessageStatus

# Profile fields the survivor takes from the merged customer when it has none of its own.
PROFILE = ("name", "language", "customer_number", "preference")


def customer_json(c: Customer, identities: list[ChannelIdentity]) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "language": c.language, "customer_number": c.customer_number,
            "preference": c.preference, "identities": [identity_json(i) for i in identities]}


async def _may_change(s: Any, agent: Agent, customer_ids: tuple[str, ...]) -> None:
    if agent.role == AgentRole.ADMIN:
        return
    handled = set((await s.scalars(select(Handover.customer_id).where(
        Handover.customer_id.in_(customer_ids), Handover.agent_id == agent.id))).all())
    if handled != set(customer_ids):
        raise Forbidden("only customers whose conversations you have handled, or an admin")


async def profile(db: Database, customer_id: str, agent: Agent) -> dict[str, Any]:
    async with db.session() as s:
        customer = await s.get(Customer, customer_id)
        if customer is None:
            raise NotFound("no such customer")
        await _may_change(s, agent, (customer_id,))
        return customer_json(customer, await identities_of(s, customer_id))


async def merge(db: Database, survivor_id: str, merged_id: str, agent: Agent) -> dict[str, Any]:
    """Move everything of `merged_id` to `survivor_id` and delete the merged customer."""
    if survivor_id == merged_id:
        raise Invalid("a customer cannot be merged into itself")
    async with db.session() as s:
        rows = {c.id: c for c in (await s.scalars(select(Customer).where(Customer.id.in_((survivor_id, merged_id)))
                                                  .order_by(Customer.id).with_for_update())).all()}
        if len(rows) != 2:
            raise NotFound("no such customer")
        await _may_change(s, agent, (survivor_id, merged_id))
        survivor, merged = rows[survivor_id], rows[merged_id]
        for field in PROFILE:
            if getattr(survivor, field) is None and getattr(merged, field) is not None:
                setattr(survivor, field, getattr(merged, field))
        for model in (ChannelIdentity, Conversation, Message, Handover, ContinueCode, DataAccess):
            await s.execute(update(model).where(model.customer_id == merged_id).values(customer_id=survivor_id))
        await s.flush()
        await s.delete(merged)
        s.add(DataAccess(actor_id=agent.id, actor_role=agent.role, action=DataAction.MERGE,
                         customer_id=survivor_id, subject=merged_id))
        await s.flush()
        return customer_json(survivor, await identities_of(s, survivor_id))


async def split(db: Database, customer_id: str, identity_id: int, agent: Agent) -> dict[str, Any]:
    """Move one channel identity of `customer_id` to a new customer. The customer's open
    conversations that answered on that identity answer on their latest other identity again."""
    async with db.session() as s:
        customer = await s.get(Customer, customer_id, with_for_update=True)
        if customer is None:
            raise NotFound("no such customer")
        await _may_change(s, agent, (customer_id,))
        identities = await identities_of(s, customer_id)
        identity = next((i for i in identities if i.id == identity_id), None)
        if identity is None:
            raise NotFound("no such identity of this customer")
        others = [i for i in identities if i.id != identity_id]
        if not others:
            raise Conflict("the customer's only identity cannot be split off")
        new = Customer(language=customer.language)
        s.add(new)
        await s.flush()
        identity.customer_id = new.id
        # Its proof was that it is the old customer's, which the split says is wrong.
        identity.verified_by = identity.verified_at = None
        fallback = others[-1]
        for conv in (await s.scalars(select(Conversation).where(
                Conversation.customer_id == customer_id, Conversation.state != "closed"))).all():
            if conv.address == identity.address:
                conv.channel, conv.address = fallback.channel, fallback.address
        s.add(DataAccess(actor_id=agent.id, actor_role=agent.role, action=DataAction.SPLIT,
                         customer_id=customer_id, subject=new.id))
        await s.flush()
        return {"customer": customer_json(customer, others), "new_customer": customer_json(new, [identity])}


async def reply_channel(db: Database, handover_id: str, identity_id: int, agent: Agent) -> dict[str, Any]:
    """The agent who has the conversation sends the next replies to another of the customer's
    identities (channels); when the customer writes again, replies follow them as always."""
    async with db.session() as s:
        h = check_action(await visible_handover(s, handover_id, agent), agent, "reply")
        identity = await s.get(ChannelIdentity, identity_id)
        if identity is None or identity.customer_id != h.customer_id:
            raise NotFound("no such identity of this customer")
        conv = await s.get(Conversation, h.conversation_id, with_for_update={"key_share": True})
        assert conv is not None
        conv.channel, conv.address = identity.channel, identity.address
        s.add(Message(conversation_id=conv.id, customer_id=conv.customer_id, channel="console",
                      direction=Direction.NOTE, author=Author.SYSTEM, status=MessageStatus.INTERNAL, created_at=utcnow(),
                      text=texts.text("reply_channel.note", conv.language, channel=identity.channel, agent=agent.display_name)))
        return {"channel": identity.channel, "identity_id": identity.id}
