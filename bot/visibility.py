"""What a customer may see of a conversation: the one rule every customer-facing path uses.

A conversation's messages are the customer's own (`in`), what was sent to them (`out`) and
internal notes (`note`: an agent's note, the note written with a transfer, system notes such as
"the customer opted out"). Notes are for agents only. Every customer-facing read (the history a
channel shows after a reconnect, REST's message list) selects with `customer_visible()`, and
every send path turns a stored row into an `OutboundMessage` only through `outbound_of()`, which
refuses anything but an outbound row - so a note cannot leave even if a query is ever wrong.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement

from connectors.base import Attachment, Button, OutboundMessage
from resonanz.store.models import Message
from resonanz.store.vocabulary import Direction

#: Directions of messages a customer may see: their own and what was sent to them.
CUSTOMER_DIRECTIONS: tuple[str, ...] = (Direction.IN, Direction.OUT)
#: The only direction that may be sent to a customer.
SENDABLE = Direction.OUT


class InternalMessageError(RuntimeError):
    """An attempt to show or send an internal message (a note) to a customer: a bug, never data."""


def is_customer_visible(direction: str) -> bool:
    return direction in CUSTOMER_DIRECTIONS


def customer_visible() -> ColumnElement[bool]:
    """The WHERE clause of every customer-facing read of `messages`."""
    return Message.direction.in_(CUSTOMER_DIRECTIONS)


def sendable() -> ColumnElement[bool]:
    """The WHERE clause of every query that picks messages to send (the outbox)."""
    return Message.direction == SENDABLE


def ensure_sendable(direction: str, message_id: Any = None) -> None:
    """Raise unless a stored message of this direction may be sent to the customer."""
    if direction != SENDABLE:
        raise InternalMessageError(
            f"message {message_id!r} has direction {direction!r}; only {SENDABLE!r} messages are sent to customers"
        )


def outbound_of(m: Message) -> OutboundMessage:
    """The one way from a stored row to something a connector sends."""
    ensure_sendable(m.direction, m.public_id)
    return OutboundMessage(
        text=m.text,
        author=m.author,
        buttons=tuple(Button(**b) for b in m.buttons or ()),
        attachments=tuple(Attachment(**a) for a in m.attachments or ()),
        message_id=m.public_id,
        created_at=m.created_at,
        sender_name=(m.metadata_ or {}).get("sender_name"),
        sender_avatar=(m.metadata_ or {}).get("sender_avatar"),
        language=(m.metadata_ or {}).get("language"),
    )
