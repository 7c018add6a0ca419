"""One turn: what came in, what the handlers decided, and what runs after the commit."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bot.engine import EngineTurn
from connectors.base import Button, OutboundMessage
from handover.service import transition
from handover.state import State
from handover.triggers import HandoverDecision
from resonanz.store.models import Conversation, Customer, Message
from resonanz.store.vocabulary import Author

log = structlog.get_logger(__name__)

#: Run after the turn's transaction committed and its replies were delivered (console events,
#: offering a new handover to an agent).
Effect = Callable[[], Awaitable[None]]

# Slots that survive a new engine session: the gateway is their memory.
CARRIED_SLOTS = ("customer_number", "customer_name")

PREFER_HUMAN = "/prefer_human"
SKIP_CUSTOMER_NUMBER = "/skip_customer_number"
# A complex matter waiting for the customer number before it goes to a person (in conv.slots).
PENDING_HANDOVER = "_pending_handover"


@dataclass
class Turn:
    """One inbound message's turn. `session`, `conv`, `customer` and `msg` belong to the
    transaction the handlers run in (the turn has two: before and after the engine call);
    `replies` and `effects` collect across both."""

    session: Any
    conv: Conversation
    customer: Customer
    msg: Message
    #: The message's text, or the payload of the button a typed reply picked.
    text: str
    language: str
    #: The help desk (handover.desk.Desk), or None when the gateway runs without one.
    desk: Any = None
    replies: list[OutboundMessage] = field(default_factory=list)
    #: The replies as stored (one row per provider call), once the turn is finished.
    stored: list[Message] = field(default_factory=list)
    #: The same, with how they are sent once the turn's transaction committed (bot.outbound).
    staged: Any = None
    effects: list[Effect] = field(default_factory=list)
    # After the engine call: its answer, or why there is none; what the triggers decided.
    engine: EngineTurn | None = None
    failure: str | None = None
    decision: HandoverDecision | None = None
    #: The engine's first turn in this conversation (the customer is offered the choice).
    opening: bool = False

    @property
    def control(self) -> str | None:
        """A channel command (opt_out, opt_in, help) the connector recognised."""
        return (self.msg.metadata_ or {}).get("control")

    def reply(self, text: str, *, author: str = Author.SYSTEM, buttons: Sequence[Button] = ()) -> None:
        self.replies.append(OutboundMessage(text=text, author=author, buttons=tuple(buttons)))

    def after(self, effect: Effect) -> None:
        self.effects.append(effect)

    def rebind(self, session: Any, conv: Conversation, customer: Customer, msg: Message) -> None:
        """Continue in another transaction (the second one, after the engine call)."""
        self.session, self.conv, self.customer, self.msg = session, conv, customer, msg


class Handler(abc.ABC):
    """One step of the pipeline."""

    @abc.abstractmethod
    def check(self, turn: Turn) -> bool:
        """Whether this handler applies. Pure: reads the turn, changes nothing."""

    @abc.abstractmethod
    async def handle(self, turn: Turn) -> bool:
        """Act on the turn. True: answered, the chain ends; False: the next handler's turn."""


async def run(handlers: Sequence[Handler], turn: Turn) -> bool:
    """Try `handlers` in order; True when one answered the turn."""
    for handler in handlers:
        if handler.check(turn) and await handler.handle(turn):
            return True
    return False


async def open_handover(
    turn: Turn, *, reason: str, trigger: str, intent: str | None, actor: str, data: dict[str, Any]
) -> None:
    """Queue the conversation for a person, in the turn's transaction; the desk offers it after."""
    conv = turn.conv
    if turn.desk is None:
        await transition(turn.session, conv, State.QUEUED, reason=reason, actor=actor, data=data)
    else:
        desk = turn.desk
        handover = await desk.open_in(
            turn.session, conv, reason=reason, trigger=trigger, intent=intent, actor=actor, data=data
        )
        handover_id = handover.id
        turn.after(lambda: desk.after_open(handover_id))
    log.info("handover.queued", conversation=conv.id, reason=reason, trigger=trigger)
