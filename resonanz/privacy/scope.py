"""Which customer a reference names, and what identifies their rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from resonanz.privacy.registry import CustomerScope
from resonanz.store.models import ChannelIdentity, Conversation, Customer, Message


async def find_customer(session: AsyncSession, ref: str) -> Customer | None:
    """A customer by id, or by `channel:external id` of one of their channel identities."""
    if ":" in ref:
        channel, external_id = ref.split(":", 1)
        identity = await session.scalar(
            select(ChannelIdentity).where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == external_id))
        return await session.get(Customer, identity.customer_id) if identity else None
    return await session.get(Customer, ref)


async def customer_scope(session: AsyncSession, customer: Customer) -> CustomerScope:
    convs = (await session.execute(select(Conversation.id, Conversation.slots)
                                   .where(Conversation.customer_id == customer.id))).all()
    numbers = {customer.customer_number} if customer.customer_number else set()
    numbers |= {str(s["customer_number"]) for _, s in convs if s and s.get("customer_number")}
    return CustomerScope(customer.id, frozenset(numbers), frozenset(c for c, _ in convs))


def media_name(attachment: Any) -> str | None:
    """The stored file's name of an attachment served at `/media/<name>` (ours), else None."""
    url = attachment.get("url") if isinstance(attachment, dict) else None
    if not isinstance(url, str) or "/media/" not in url:
        return None
    name = url.rsplit("/media/", 1)[1]
    return name if name and "/" not in name and not name.startswith(".") else None


async def media_names(session: AsyncSession, conversation_ids: frozenset[str]) -> set[str]:
    """The names of the media files the messages of these conversations refer to."""
    if not conversation_ids:
        return set()
    names: set[str] = set()
    for attachments in await session.scalars(
            select(Message.attachments).where(Message.conversation_id.in_(conversation_ids))):
        names |= {n for a in attachments or [] if (n := media_name(a))}
    return names
