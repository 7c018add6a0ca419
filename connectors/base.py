"""The connector contract: what every channel hands to the core and what it gets back.

A connector verifies a provider's request (failing closed), normalises it to one frozen
`InboundMessage`, hands it to the injected `InboundHandler`, and delivers `OutboundMessage`s to a
serialisable `ChannelAddress`. Provider types never cross this line.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import structlog
from aiohttp import web

if TYPE_CHECKING:
    import aiohttp

    from bot.dispatcher import DispatchResult, History
    from resonanz.media import MediaStore
    from resonanz.settings import Settings
    from resonanz.store import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ChannelAddress:
    """Where a customer can be reached later (stored with the conversation)."""

    channel: str
    recipient: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "recipient": self.recipient, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelAddress:
        return cls(
            channel=str(data["channel"]),
            recipient=str(data["recipient"]),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True)
class Button:
    title: str
    payload: str

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@dataclass(frozen=True)
class Attachment:
    """A picture or file, by URL (media bytes are stored by the connector that fetched them)."""

    kind: str  # "image" | "file"
    url: str
    mime_type: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "mime_type": self.mime_type, "name": self.name}


@dataclass(frozen=True)
class Location:
    """A place the customer shared (data, never folded into the text)."""

    latitude: float
    longitude: float
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"latitude": self.latitude, "longitude": self.longitude, "label": self.label}


# Channel-level commands a connector recognises (SMS keywords, for example). The core handles them
# without the engine: opt_out stops all sending to that identity, opt_in resumes it, help answers.
CONTROLS = frozenset({"opt_out", "opt_in", "help"})


@dataclass(frozen=True)
class InboundMessage:
    """One customer message, normalised. `raw` keeps the provider payload for debugging only.

    `customer_key` links identities on different channels to one customer (for example
    "phone:+4915112345678" from both WhatsApp and SMS); `key_verified` says the channel checked
    cryptographically that the sender holds that key (a signed web chat identity), which marks the
    identity verified. `control` is one of CONTROLS or None.
    """

    channel: str
    sender_id: str
    text: str
    address: ChannelAddress
    provider_message_id: str | None = None
    attachments: tuple[Attachment, ...] = ()
    location: Location | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    language_hint: str | None = None
    display_name: str | None = None
    customer_key: str | None = None
    key_verified: bool = False
    control: str | None = None
    received_at: datetime | None = None
    raw: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.control is not None and self.control not in CONTROLS:
            raise ValueError(f"control must be one of {sorted(CONTROLS)}, not {self.control!r}")


@dataclass(frozen=True)
class OutboundMessage:
    """One message to a customer, from the bot, an agent or the system."""

    text: str
    author: str  # "bot" | "agent" | "system"
    buttons: tuple[Button, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    message_id: str | None = None  # the stored message's id, when it has been persisted
    created_at: datetime | None = None
    sender_name: str | None = None  # an agent's display name, for channels that show it
    sender_avatar: str | None = None  # the URL of the agent's picture (one of our media files), if they have one
    language: str | None = None  # the conversation's language when it was written ("de", "en")

    def as_text_with_options(self) -> str:
        """Text-only rendering for channels without native buttons: numbered options."""
        if not self.buttons:
            return self.text
        lines = [self.text, ""] if self.text else []
        lines += [f"{i}. {b.title}" for i, b in enumerate(self.buttons, start=1)]
        return "\n".join(lines)


def match_button(text: str, buttons: tuple[Button, ...] | list[Button]) -> Button | None:
    """The button a typed reply means: its number ("2", "2.") or its title, case-insensitively."""
    answer = text.strip().rstrip(".").strip().casefold()
    if not answer or not buttons:
        return None
    if answer.isdigit():
        index = int(answer)
        return buttons[index - 1] if 1 <= index <= len(buttons) else None
    for b in buttons:
        if b.title.strip().casefold() == answer or b.payload.casefold() == answer:
            return b
    return None


InboundHandler = Callable[[InboundMessage], Awaitable["DispatchResult"]]
# (channel, provider message id, provider status, error or None) -> whether the message is known
StatusHandler = Callable[[str, str, str, "str | None"], Awaitable[bool]]
HistoryReader = Callable[[str, str], Awaitable["History | None"]]


@dataclass(frozen=True)
class ConnectorContext:
    """Everything a connector gets from the core, through its constructor.

    `config` is this connector's section of the gateway configuration (resonanz.yml), with every
    `*_env` key already resolved from the environment. `media` stores files a customer sent.
    `db` is the gateway's database, for a connector that keeps state of its own (the web chat's
    sessions); a connector never reads the core's tables through it. The connector decides its
    delivery: `on_message` returns the turn's replies (REST, web chat), `accept` returns as soon
    as the message is stored (Telegram, Twilio: replies go out through the outbox).
    """

    on_message: InboundHandler
    history: HistoryReader
    settings: Settings
    http: aiohttp.ClientSession
    config: Mapping[str, Any] = field(default_factory=dict)
    media: MediaStore | None = None
    on_status: StatusHandler | None = None
    db: Database | None = None
    #: Persist and acknowledge only: the turn runs afterwards, in order per conversation. Push
    #: channels (whose provider resends on a slow answer) use it; None means use `on_message`.
    accept: InboundHandler | None = None


class DeliveryError(Exception):
    """A connector could not deliver a message.

    `permanent`: retrying will not help (4xx, blocked, opted out) - the agent is shown why.
    Otherwise the outbox retries with exponential backoff, or after `retry_after` seconds when
    the provider said so (429 Retry-After).
    """

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class Outgoing:
    """What the core hands a delivery: messages of one conversation, already stored, and the way
    to send them through the outbox (in order, retried, every outcome recorded)."""

    address: ChannelAddress
    messages: Sequence[OutboundMessage]
    send_queued: Callable[[], Awaitable[object]]


class Delivery(abc.ABC):
    """How a channel's messages reach the customer once the core has stored them. The core calls
    `deliver` after a turn and after an agent's message, without knowing which delivery it is."""

    #: The messages wait in the outbox until `deliver` sends them (stored `pending`); otherwise
    #: storing them is delivering them (stored `sent`: returned, pushed, or fetched later).
    queued: ClassVar[bool] = False

    @abc.abstractmethod
    async def deliver(self, connector: Connector, outgoing: Outgoing) -> None:
        """Get `outgoing.messages` to the customer (or leave them to be fetched)."""


class Returned(Delivery):
    """Pull channels (REST): a turn's replies go back in the webhook's response, later messages
    are fetched with the history. Nothing to do here."""

    async def deliver(self, connector: Connector, outgoing: Outgoing) -> None:
        return None


class PushedLive(Delivery):
    """Channels that deliver stored messages themselves (web chat): pushed to the open sockets
    now, and handed out again with the history when the customer reconnects. So `send` is best
    effort and never retried."""

    async def deliver(self, connector: Connector, outgoing: Outgoing) -> None:
        for message in outgoing.messages:
            try:
                await connector.send(outgoing.address, message)
            except Exception:  # the message is stored and comes with the history
                log.warning("outbound.push_failed", channel=outgoing.address.channel)


class ThroughOutbox(Delivery):
    """Push channels (Telegram, WhatsApp, SMS): stored `pending`, sent by the outbox through
    `send`, retried on transient errors; the provider's delivery reports follow."""

    queued = True

    async def deliver(self, connector: Connector, outgoing: Outgoing) -> None:
        await outgoing.send_queued()


class Connector(abc.ABC):
    """A channel. Small on purpose: routes in, `send` out, start-up and shut-down."""

    name: ClassVar[str]
    #: How stored messages reach the customer (`Returned`, `PushedLive` or `ThroughOutbox`).
    delivery: ClassVar[Delivery] = ThroughOutbox()

    def __init__(self, ctx: ConnectorContext) -> None:
        self.ctx = ctx

    @abc.abstractmethod
    def routes(self) -> list[web.AbstractRouteDef]:
        """The aiohttp routes this connector serves (mounted by the app factory)."""

    @abc.abstractmethod
    async def send(self, address: ChannelAddress, message: OutboundMessage) -> str | None:
        """Deliver one message with ONE provider call; return the provider's id for it (if any),
        raise `DeliveryError` when that fails. Called by the outbox, once per attempt."""

    async def sent_since(self, address: ChannelAddress, message: OutboundMessage, since: datetime) -> list[str] | None:
        """The provider's ids of the messages with `message`'s content sent to `address` since
        `since`, newest first; None when the provider cannot be asked (the default: Telegram's Bot
        API has no such list). The outbox asks this about a send that was under way when its
        process died: an id it has not stored means that send arrived; none means it did not, and
        it is sent again. Without an answer the message is `unknown` and never resent."""
        return None

    def split(self, message: OutboundMessage) -> list[OutboundMessage]:
        """The messages `message` is stored (and sent, retried, reported) as: more than one when
        the channel needs several provider calls for it (a caption too long for a picture,
        several files). Each part is its own outbox entry, so a retry never repeats another part."""
        return [message]

    async def signal(self, address: ChannelAddress, kind: str, data: dict[str, Any]) -> None:  # noqa: B027
        """A passing sign for the customer, never stored and best effort ("typing" with the
        agent's `name`). Channels that cannot show it ignore it (the default)."""

    async def startup(self) -> None:  # noqa: B027 - optional hook
        """Open provider clients; called once the app runs."""

    async def drain(self) -> None:  # noqa: B027 - optional hook
        """The gateway is stopping and its turns are done: close live connections (sockets) with a
        reconnect hint. `shutdown` follows."""

    async def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Close provider clients."""

