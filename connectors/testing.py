"""The connector contract, as a test suite any connector (built-in or third-party) can run.

Write a `Harness` for your connector - how to build a signed provider request, how to forge one,
what the provider received, how to make the provider fail - then subclass `ConnectorContract`
and provide it as the `harness` fixture:

    class TestMyChannel(ConnectorContract):
        @pytest.fixture
        async def harness(self):
            async with MyHarness() as h:
                yield h

The suite checks normalisation, signature rejection (fail closed), stable provider ids for
de-duplication, the text fallback for buttons (or native buttons), delivery errors
(transient vs permanent, Retry-After), and that an internal note written to a conversation never
reaches `send()` or the customer's history (with the real dispatcher and outbox on a throwaway
SQLite database). It needs pytest and pytest-asyncio.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from connectors.base import (
    Button,
    ChannelAddress,
    Connector,
    ConnectorContext,
    Delivery,
    DeliveryError,
    InboundMessage,
    OutboundMessage,
    Returned,
)


@dataclass(frozen=True)
class ProviderRequest:
    """One HTTP request a provider would send to the connector's webhook."""

    path: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass(frozen=True)
class Delivered:
    """What the provider received for one outbound message."""

    text: str
    buttons: tuple[str, ...] = ()  # titles of native buttons, if the channel has them


@dataclass
class _Result:
    conversation_id: str = "c1"
    state: str = "bot"
    replies: tuple[OutboundMessage, ...] = ()
    message_id: str | None = None
    duplicate: bool = False


class RecordingCore:
    """Stands in for the dispatcher: records inbound messages, de-duplicates by provider id
    within one sender (another sender's id is another message, as in the dispatcher)."""

    def __init__(self) -> None:
        self.received: list[InboundMessage] = []
        self.statuses: list[tuple[str, str, str, str | None]] = []
        self._seen: set[tuple[str, str, str]] = set()

    async def on_message(self, inbound: InboundMessage) -> Any:
        key = (inbound.channel, inbound.sender_id, inbound.provider_message_id or "")
        if inbound.provider_message_id and key in self._seen:
            return _Result(duplicate=True)
        self._seen.add(key)
        self.received.append(inbound)
        return _Result(message_id=str(len(self.received)))

    #: where `history` reads from once a test wires the real dispatcher in (else: no history)
    history_reader: Any = None

    async def history(self, channel: str, sender_id: str) -> Any:
        return await self.history_reader(channel, sender_id) if self.history_reader else None

    async def on_status(self, channel: str, provider_id: str, status: str, error: str | None) -> bool:
        self.statuses.append((channel, provider_id, status, error))
        return True


class Harness(abc.ABC):
    """What the contract suite needs to know about one connector and its provider."""

    #: the connector under test, constructed with `context(...)` below
    connector: Connector
    core: RecordingCore
    #: False for channels without webhook signatures (the signature tests are skipped)
    signed: bool = True
    #: True when the channel renders buttons natively (else a numbered text fallback is expected)
    native_buttons: bool = False
    #: False for pull channels whose send() is a no-op (the delivery tests are skipped)
    pushes: bool = True

    @abc.abstractmethod
    def inbound(self, text: str, *, message_id: str, sender: str) -> ProviderRequest:
        """A valid, correctly signed provider request carrying one text message."""

    def forged(self, request: ProviderRequest) -> ProviderRequest:
        """The same request with a wrong signature (needed when `signed`)."""
        raise TypeError(f"{type(self).__name__} has signed=True, so it must define forged()")

    def unsigned(self, request: ProviderRequest) -> ProviderRequest:
        """The same request without any signature (needed when `signed`)."""
        raise TypeError(f"{type(self).__name__} has signed=True, so it must define unsigned()")

    @abc.abstractmethod
    def address(self, sender: str) -> ChannelAddress:
        """Where replies to `sender` go."""

    async def delivered(self) -> list[Delivered]:
        """Everything the provider accepted, in order."""
        return []

    def fail_provider(self, status: int, *, retry_after: int | None = None) -> None:
        """Make the provider answer the next send with this HTTP status (needed when `pushes`)."""
        raise TypeError(f"{type(self).__name__} has pushes=True, so it must define fail_provider()")


def context(settings: Any, http: aiohttp.ClientSession, core: RecordingCore, config: Mapping[str, Any],
            media: Any = None) -> ConnectorContext:
    return ConnectorContext(
        on_message=core.on_message, history=core.history, settings=settings, http=http,
        config=dict(config), media=media, on_status=core.on_status, accept=core.on_message,
    )


def _pushing(served: Any) -> Harness:
    """The harness of a channel that sends through a provider (pull channels skip these tests)."""
    harness: Harness = served[0]
    if not harness.pushes:
        pytest.skip(f"{harness.connector.name} is a pull channel")
    return harness


class ConnectorContract:
    """Subclass and provide an async `harness` fixture yielding a started `Harness`."""

    @pytest.fixture
    async def served(self, harness: Harness) -> Any:
        app = web.Application()
        app.router.add_routes(harness.connector.routes())
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        async with aiohttp.ClientSession() as client:
            yield harness, server, client
        await server.close()

    @staticmethod
    async def _post(server: TestServer, client: aiohttp.ClientSession, req: ProviderRequest) -> int:
        async with client.request(req.method, server.make_url(req.path), data=req.body, headers=dict(req.headers)) as r:
            await r.read()
            return r.status

    async def test_normalises_a_text_message(self, served: Any) -> None:
        harness, server, client = served
        status = await self._post(server, client, harness.inbound("Zählerstand 12345 ✓", message_id="m-1", sender="s-1"))
        assert 200 <= status < 300
        [msg] = harness.core.received
        assert msg.channel == harness.connector.name
        assert msg.text == "Zählerstand 12345 ✓"
        assert msg.address.channel == harness.connector.name
        assert msg.address == harness.address("s-1")
        assert msg.provider_message_id, "a provider id is needed to de-duplicate retried webhooks"
        # The address must survive the database (it is stored as JSON).
        assert ChannelAddress.from_dict(msg.address.to_dict()) == msg.address

    async def test_declares_how_its_messages_are_delivered(self, served: Any) -> None:
        harness: Harness = served[0]
        assert isinstance(harness.connector.delivery, Delivery)
        if not harness.pushes:  # send() is a no-op: waiting in the outbox, nothing would ever arrive
            assert not harness.connector.delivery.queued

    async def test_redelivery_keeps_the_provider_id(self, served: Any) -> None:
        harness, server, client = served
        req = harness.inbound("hallo", message_id="m-dup", sender="s-2")
        assert 200 <= await self._post(server, client, req) < 300
        assert 200 <= await self._post(server, client, req) < 300, "a duplicate must still be acknowledged"
        assert len(harness.core.received) == 1

    async def test_a_provider_id_is_scoped_to_its_sender(self, served: Any) -> None:
        harness, server, client = served
        for sender in ("s-a", "s-b"):
            assert 200 <= await self._post(server, client, harness.inbound("hallo", message_id="m-same", sender=sender)) < 300
        first, second = harness.core.received
        assert first.sender_id != second.sender_id, "the sender must be part of the de-duplication key"

    async def test_forged_signature_is_rejected(self, served: Any) -> None:
        harness, server, client = served
        if not harness.signed:
            pytest.skip(f"{harness.connector.name} has no webhook signature")
        req = harness.inbound("hallo", message_id="m-forged", sender="s-3")
        assert await self._post(server, client, harness.forged(req)) == 403
        assert await self._post(server, client, harness.unsigned(req)) == 403
        assert harness.core.received == []

    async def test_buttons_native_or_numbered(self, served: Any) -> None:
        harness = _pushing(served)
        message = OutboundMessage(text="Wie möchten Sie weitermachen?", author="bot",
                                  buttons=(Button("Selbst erledigen", "/continue_with_bot"),
                                           Button("Mit einer Person sprechen", "/request_human")))
        await harness.connector.send(harness.address("s-4"), message)
        [got] = await harness.delivered()
        assert "Wie möchten Sie weitermachen?" in got.text
        if harness.native_buttons:
            assert got.buttons == ("Selbst erledigen", "Mit einer Person sprechen")
        else:
            assert "1. Selbst erledigen" in got.text and "2. Mit einer Person sprechen" in got.text

    async def test_server_error_is_transient(self, served: Any) -> None:
        harness = _pushing(served)
        harness.fail_provider(500)
        with pytest.raises(DeliveryError) as err:
            await harness.connector.send(harness.address("s-5"), OutboundMessage(text="x", author="bot"))
        assert not err.value.permanent
        assert await harness.delivered() == []

    async def test_rate_limit_carries_retry_after(self, served: Any) -> None:
        harness = _pushing(served)
        harness.fail_provider(429, retry_after=7)
        with pytest.raises(DeliveryError) as err:
            await harness.connector.send(harness.address("s-6"), OutboundMessage(text="x", author="bot"))
        assert not err.value.permanent
        assert err.value.retry_after == 7

    async def test_client_error_is_permanent(self, served: Any) -> None:
        harness = _pushing(served)
        harness.fail_provider(400)
        with pytest.raises(DeliveryError) as err:
            await harness.connector.send(harness.address("s-7"), OutboundMessage(text="x", author="bot"))
        assert err.value.permanent
        assert str(err.value), "the agent is shown why"

    async def test_internal_notes_never_reach_the_customer(self, served: Any, tmp_path: Any) -> None:
        """An agent's note and a transfer note in a conversation: neither is handed to send() by
        the outbox, the live push or a restart, nor is it in the history the channel shows."""
        import asyncio

        from bot.dispatcher import Dispatcher
        from resonanz.store import Database
        from resonanz.store.migrate import upgrade
        from resonanz.store.models import ChannelIdentity, Conversation, Customer, Message

        harness, _server, _client = served
        connector = harness.connector
        name = connector.name
        url = f"sqlite:///{tmp_path / 'notes-contract.db'}"
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        sent: list[OutboundMessage] = []
        real_send = connector.send

        async def recording_send(address: ChannelAddress, message: OutboundMessage) -> Any:
            sent.append(message)
            return await real_send(address, message)

        connector.send = recording_send  # type: ignore[method-assign]
        # emit and history never call the engine.
        dispatcher = Dispatcher(db=db, engine=None, settings=connector.ctx.settings,  # type: ignore[arg-type]
                                engine_ready=asyncio.Event(), connectors={name: connector})
        harness.core.history_reader = dispatcher.history
        note, transfer = "INTERNAL-NOTE-check-goodwill-51", "Transfer: INTERNAL-NOTE-contract-question-52"
        address = harness.address("s-note")
        try:
            async with db.session() as s:
                customer = Customer()
                s.add(customer)
                await s.flush()
                s.add(ChannelIdentity(customer_id=customer.id, channel=name, external_id=address.recipient,
                                      address=address.to_dict()))
                conv = Conversation(customer_id=customer.id, channel=name, address=address.to_dict(), state="agent")
                s.add(conv)
                await s.flush()
                s.add(Message(conversation_id=conv.id, customer_id=customer.id, channel=name, direction="in",
                              author="customer", text="Hallo", status="processed"))
                for text in (note, transfer):
                    # Even a note whose status looks sendable must not be sent.
                    s.add(Message(conversation_id=conv.id, customer_id=customer.id, channel="console",
                                  direction="note", author="agent", text=text, status="pending"))
                conversation_id = conv.id
            await dispatcher.emit(conversation_id, [OutboundMessage(text="Antwort vom Team", author="agent")])
            await dispatcher.outbox.flush(conversation_id)
            await dispatcher.outbox.resume()
            history = await harness.core.history(name, address.recipient)
        finally:
            connector.send = real_send  # type: ignore[method-assign]
            harness.core.history_reader = None
            await dispatcher.outbox.close()
            await db.dispose()
        texts = [m.text for m in sent] + [d.text for d in await harness.delivered()]
        assert not [t for t in texts if "INTERNAL-NOTE" in t], texts
        if not isinstance(connector.delivery, Returned):  # a pull channel returns replies instead
            assert "Antwort vom Team" in [m.text for m in sent], "the agent's reply is sent"
        assert history is not None
        shown = [m.text for m in history.messages]
        assert "Antwort vom Team" in shown and "Hallo" in shown
        assert not [t for t in shown if "INTERNAL-NOTE" in t], shown
