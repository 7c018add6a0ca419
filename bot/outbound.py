"""Outbound messages: stored as the channel sends them (one row per provider call), then handed to
the channel's delivery (`Connector.delivery`) without knowing which it is; messages from agents
and the system (`emit`); and the providers' delivery reports."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, select

from bot.outbox import Outbox
from bot.visibility import InternalMessageError, outbound_of
from connectors.base import ChannelAddress, Connector, OutboundMessage, Outgoing
from handover.desk import message_json
from resonanz.metrics import Metrics
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, Handover, Message, utcnow
from resonanz.store.vocabulary import Author, Direction, MessageStatus


@dataclass
class Staged:
    """Messages a transaction stored, and how they go out once it has committed (`send`)."""

    conversation_id: str
    address: ChannelAddress
    rows: list[Message]
    # Stored already `sending` (nothing earlier was waiting): sent at once, without the outbox's
    # claim transaction. Otherwise the outbox sends them in order behind what waits.
    claimed: bool = False
    opted_out: bool = False


def _waiting(conversation_id: Any) -> Any:
    """Whether earlier messages of the conversation still wait for the outbox."""
    return exists().where(
        Message.conversation_id == conversation_id, Message.direction == Direction.OUT,
        Message.status.in_((MessageStatus.PENDING, MessageStatus.SENDING)),
    )


def _opted_out(customer_id: Any, channel: Any) -> Any:
    return exists().where(
        ChannelIdentity.customer_id == customer_id,
        ChannelIdentity.channel == channel, ChannelIdentity.opted_out.is_(True),
    )


# Both for one conversation (`OutboundMessages.stage`), built once.
_BUSY_OR_OPTED_OUT = select(_waiting(bindparam("conversation_id")),
                            _opted_out(bindparam("customer_id"), bindparam("channel")))


class OutboundMessages:
    """`desk` returns the help desk (attached after construction) or None."""

    def __init__(
        self,
        *,
        db: Database,
        outbox: Outbox,
        connectors: Mapping[str, Connector] | Callable[[], Mapping[str, Connector]],
        desk: Callable[[], Any],
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics or Metrics()
        self.outbox = outbox
        self._connectors = connectors
        self.desk = desk

    def initial_status(self, conv: Conversation) -> MessageStatus:
        """Waiting for the outbox, or delivered by being stored: the channel's delivery decides.
        A channel that is not enabled goes through the outbox too (which records why it failed)."""
        connector = self.connector(conv.address.get("channel", conv.channel))
        queued = connector is None or connector.delivery.queued
        return MessageStatus.PENDING if queued else MessageStatus.SENT

    async def deliver(self, address: ChannelAddress, messages: list[OutboundMessage],
                       send_queued: Callable[[], Awaitable[object]]) -> None:
        """Hand stored messages to their channel's delivery, whichever it is."""
        for message in messages:
            if not isinstance(message, OutboundMessage):
                # Only OutboundMessage (made from an `out` row by outbound_of) may reach a connector.
                raise InternalMessageError(f"refusing to deliver {type(message).__name__} to {address.channel}")
        connector = self.connector(address.channel)
        if connector is None:
            await send_queued()
        else:
            await connector.delivery.deliver(connector, Outgoing(address, tuple(messages), send_queued))
        self.metrics.delivered(address.channel, (m.author for m in messages))

    def store(
        self, s: Any, conv: Conversation, replies: list[OutboundMessage], status: MessageStatus | None = None
    ) -> list[Message]:
        """Add the replies to the session, as the channel sends them; `status` defaults to what the
        channel's delivery says (`initial_status`)."""
        status = status or self.initial_status(conv)
        rows = []
        # Stored as the channel will send them: one row per provider call (Connector.split).
        connector = self.connector(conv.channel)
        parts = [p for r in replies for p in (connector.split(r) if connector is not None else [r])]
        for r in parts:
            m = Message(
                conversation_id=conv.id,
                customer_id=conv.customer_id,
                channel=conv.channel,
                direction=Direction.OUT,
                author=r.author,
                text=r.text,
                buttons=[b.to_dict() for b in r.buttons],
                attachments=[a.to_dict() for a in r.attachments],
                status=status,
                attempts=1 if status in (MessageStatus.SENT, MessageStatus.SENDING) else 0,
                created_at=utcnow(),
                # The conversation's language as the reply was written: a channel with its own
                # labels (the web chat) follows it.
                metadata_={**({"sender_name": r.sender_name} if r.sender_name else {}),
                           **({"sender_avatar": r.sender_avatar} if r.sender_avatar else {}),
                           **({"language": conv.language} if conv.language else {})},
                # Stored already claimed: this process holds the lease until the send returns.
                **(self.outbox.lease() if status == MessageStatus.SENDING else {}),
            )
            s.add(m)
            rows.append(m)
        return rows

    async def stage(
        self, s: Any, conv: Conversation, messages: list[OutboundMessage],
        *, busy: bool | None = None, opted_out: bool | None = None,
    ) -> Staged:
        """Store messages in the caller's transaction; `send` them after it committed. When the
        channel queues and nothing earlier waits, they are stored already claimed (`sending`,
        leased to this process). `busy`/`opted_out` are read here unless the caller has them."""
        status = self.initial_status(conv)
        claimed = False
        if status == MessageStatus.PENDING and messages:
            if busy is None:
                busy, opted_out = (await s.execute(_BUSY_OR_OPTED_OUT, {
                    "conversation_id": conv.id, "customer_id": conv.customer_id, "channel": conv.channel})).one()
            claimed = not busy
        rows = self.store(s, conv, messages, MessageStatus.SENDING if claimed else status)
        return Staged(conv.id, ChannelAddress.from_dict(conv.address), rows, claimed, bool(opted_out))

    async def send(self, staged: Staged) -> None:
        """Hand staged messages to their channel's delivery; `staged.rows` then carry the
        statuses the sending left them in."""

        async def send_queued() -> None:
            if staged.claimed:
                outcomes = await self.outbox.send_claimed(staged.conversation_id, staged.rows, staged.address,
                                                          staged.opted_out)
                for m in staged.rows:
                    m.status, m.error = outcomes.get(m.public_id, (m.status, m.error))
                return
            await self.outbox.flush(staged.conversation_id)
            async with self.db.session() as s:
                pks = [m.id for m in staged.rows]
                staged.rows = list((await s.scalars(
                    select(Message).where(Message.id.in_(pks)).order_by(Message.id))).all())

        await self.deliver(staged.address, [outbound_of(m) for m in staged.rows], send_queued)

    def connector(self, channel: str) -> Connector | None:
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
        received = time.perf_counter()
        async with self.db.session() as s:
            # One round trip: the conversation, whether earlier messages still wait, whether the
            # customer opted out on the conversation's channel, and the guarding handover.
            query = select(Conversation, _waiting(Conversation.id).label("busy"),
                           _opted_out(Conversation.customer_id, Conversation.channel).label("opted_out"))
            if guard is not None:
                query = query.add_columns(Handover).outerjoin(Handover, Handover.id == guard[0])
            row = (await s.execute(query.where(Conversation.id == conversation_id))).one()
            conv, busy, opted_out = row[0], row[1], row[2]
            if guard is not None:
                guard[1](row[3])
            staged = await self.stage(s, conv, messages, busy=busy, opted_out=opted_out)
            await s.flush()

        await self.send(staged)
        rows = staged.rows
        if any(m.author == Author.AGENT for m in messages):
            self.metrics.relay("to_customer", staged.address.channel, received)
        payloads = [message_json(m) for m in rows]
        if (desk := self.desk()) is not None:
            await desk.conversation_messages(conversation_id, payloads)
        return payloads

    async def delivery_status(self, channel: str, provider_id: str, status: str, error: str | None) -> bool:
        """A provider's delivery report for one of our messages (sent -> delivered -> read, or
        failed). Reports may arrive out of order; a status never moves backwards."""
        sent, failed = MessageStatus.SENT, MessageStatus.FAILED
        ours = {"queued": sent, "accepted": sent, "sending": sent, "sent": sent, "delivered": MessageStatus.DELIVERED,
                "read": MessageStatus.READ, "failed": failed, "undelivered": failed}.get(status)
        if ours is None:
            return False
        rank = {sent: 1, MessageStatus.DELIVERED: 2, MessageStatus.READ: 3}
        async with self.db.session(urgent=True) as s:
            m = await s.scalar(
                select(Message).where(
                    Message.channel == channel, Message.provider_message_id == provider_id,
                    Message.direction == Direction.OUT,
                )
            )
            if m is None:
                return False
            if ours == failed:
                changed = m.status != failed
                m.status, m.error = failed, error or f"provider reported {status}"
            else:
                changed = rank.get(ours, 0) > rank.get(m.status, 0) and m.status != failed
                if changed:
                    m.status = ours
            conversation_id, public_id = m.conversation_id, m.public_id
        if changed and (desk := self.desk()) is not None:
            await desk.message_changed(conversation_id, public_id)
        return True
