"""The customer's view of their conversation: their messages and what was sent to them, never
internal notes (the REST channel's and the web chat's history, `ctx.history`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bot.visibility import customer_visible, ensure_sendable, is_customer_visible
from connectors.base import Attachment, Button, OutboundMessage
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, Message
from resonanz.store.vocabulary import Direction


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
    display: str | None = None  # the title of the button a customer pressed (its payload is `text`)
    sender_name: str | None = None  # the agent's name on an agent's message
    sender_avatar: str | None = None  # the URL of the agent's picture on an agent's message

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
            sender_name=self.sender_name,
            sender_avatar=self.sender_avatar,
        )


@dataclass(frozen=True)
class History:
    """The customer's view of their current conversation (no internal notes)."""

    conversation_id: str
    state: str
    messages: tuple[StoredMessage, ...]
    language: str | None = None
    #: The same identity's closed conversations just before this one (oldest first, at most
    #: EARLIER_MESSAGES): a chat page shows them above, so a finished conversation stays visible.
    earlier: tuple[StoredMessage, ...] = ()

    @property
    def outbound(self) -> tuple[StoredMessage, ...]:
        """What was sent to the customer (the REST channel's message list)."""
        return tuple(m for m in self.messages if m.direction == Direction.OUT)

    @property
    def inbound(self) -> tuple[StoredMessage, ...]:
        return tuple(m for m in self.messages if m.direction == Direction.IN)


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
        display=(m.metadata_ or {}).get("display") if m.direction == Direction.IN else None,
        sender_name=(m.metadata_ or {}).get("sender_name") if m.direction == Direction.OUT else None,
        sender_avatar=(m.metadata_ or {}).get("sender_avatar") if m.direction == Direction.OUT else None,
    )


EARLIER_CONVERSATIONS = 3
EARLIER_MESSAGES = 100


async def read_history(db: Database, channel: str, sender_id: str) -> History | None:
    """The customer's view of the current (latest) conversation of a channel identity: their
    messages and what was sent to them, never internal notes."""
    async with db.session() as s:
        identity = await s.scalar(
            select(ChannelIdentity).where(
                ChannelIdentity.channel == channel, ChannelIdentity.external_id == sender_id
            )
        )
        if identity is None:
            return None
        convs = (await s.scalars(
            select(Conversation)
            .where(Conversation.customer_id == identity.customer_id)
            .order_by(Conversation.created_at.desc(), Conversation.id.desc())
            .limit(1 + EARLIER_CONVERSATIONS)
        )).all()
        if not convs:
            return None
        conv = convs[0]
        earlier: list[Message] = []
        if len(convs) > 1:
            earlier = list(reversed((await s.scalars(
                select(Message)
                .where(Message.conversation_id.in_([c.id for c in convs[1:]]), customer_visible())
                .order_by(Message.id.desc())
                .limit(EARLIER_MESSAGES)
            )).all()))
        msgs = (
            await s.scalars(
                select(Message)
                .where(Message.conversation_id == conv.id, customer_visible())
                .order_by(Message.id)
            )
        ).all()
        return History(conv.id, conv.state, tuple(_stored(m) for m in msgs), conv.language,
                       tuple(_stored(m) for m in earlier))
