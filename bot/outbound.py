"""Outbound messages: stored as the channel sends them (one row per provider call), then handed to
the channel's delivery (`Connector.delivery`) without knowing which it is; messages from agents
and the system (`emit`); and the providers' delivery reports."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import exists, select

from bot.outbox import Outbox
from bot.visibility import InternalMessageError, outbound_of
from connectors.base import ChannelAddress, Connector, OutboundMessage, Outgoing
from handover.desk import message_json
from resonanz.metrics import Metrics
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, Handover, Message, utcnow
from resonanz.store.vocabulary import Author, Direction, MessageStatus


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
                # Stored already claimed: this process holds the lease until the send returns.
                **(self.outbox.lease() if status == MessageStatus.SENDING else {}),
            )
            s.add(m)
            rows.append(m)
        return rows

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
            waiting = exists().where(
                Message.conversation_id == Conversation.id, Message.direction == Direction.OUT,
                Message.status.in_((MessageStatus.PENDING, MessageStatus.SENDING)),
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
            initial = self.initial_status(conv)
            # Nothing earlier waiting: store the messages already claimed and send them at once.
            direct = initial == MessageStatus.PENDING and not busy
            rows = self.store(s, conv, messages, MessageStatus.SENDING if direct else initial)
            await s.flush()
            address = ChannelAddress.from_dict(conv.address)

        async def send_queued() -> None:
            nonlocal rows
            if direct:
                outcomes = await self.outbox.send_claimed(conversation_id, rows, address, opted_out)
                for m in rows:
                    m.status, m.error = outcomes.get(m.public_id, (m.status, m.error))
                return
            await self.outbox.flush(conversation_id)
            async with self.db.session() as s:
                pks = [m.id for m in rows]
                rows = list((await s.scalars(select(Message).where(Message.id.in_(pks)).order_by(Message.id))).all())

        await self.deliver(address, [outbound_of(m) for m in rows], send_queued)
        if any(m.author == Author.AGENT for m in messages):
            self.metrics.relay("to_customer", address.channel, received)
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
        async with self.db.session() as s:
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
