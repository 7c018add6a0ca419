"""The connector decides how its messages are delivered (returned with the turn, pushed live, or
through the outbox); the core stores them and calls the connector's `delivery` without knowing
which it is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from bot.dispatcher import Dispatcher
from bot.engine import RasaEngine
from connectors.base import (
    ChannelAddress,
    Connector,
    Delivery,
    InboundMessage,
    OutboundMessage,
    Outgoing,
    PushedLive,
    Returned,
    ThroughOutbox,
)
from connectors.registry import load
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Message
from resonanz.store.vocabulary import Direction, MessageStatus
from tests.support.scripted_engine import ScriptedEngine, serve_engine


class Recording(Delivery):
    """A delivery of its own: the core must use it, whatever it is."""

    def __init__(self, queued: bool) -> None:
        self.queued = queued
        self.calls: list[Outgoing] = []

    async def deliver(self, connector: Connector, outgoing: Outgoing) -> None:
        self.calls.append(outgoing)
        if self.queued:
            await outgoing.send_queued()


class Probe(Connector):
    name = "probe"

    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery  # type: ignore[misc]
        self.sent: list[OutboundMessage] = []

    def routes(self) -> list[web.AbstractRouteDef]:
        return []

    async def send(self, address: ChannelAddress, message: OutboundMessage) -> str:
        self.sent.append(message)
        return f"probe-{len(self.sent)}"


@pytest.fixture
async def engine_url() -> AsyncIterator[str]:
    async with serve_engine(ScriptedEngine()) as url:
        yield url


async def _turn(database: Database, engine_url: str, probe: Probe) -> str:
    """One customer turn and one agent message on the probe's channel; the conversation's id."""
    settings = Settings(DATABASE_URL=database.url, offer_choice_at_start=False)
    ready = asyncio.Event()
    ready.set()
    async with aiohttp.ClientSession() as http:
        engine = RasaEngine(engine_url, "t", timeout=10, session=http)
        dispatcher = Dispatcher(db=database, engine=engine, settings=settings, engine_ready=ready,
                                connectors={"probe": probe})
        try:
            result = await dispatcher.handle(InboundMessage(channel="probe", sender_id="p1", text="Hallo",
                                                            address=ChannelAddress("probe", "p1")))
            await dispatcher.emit(result.conversation_id, [OutboundMessage(text="vom Team", author="agent")])
        finally:
            await dispatcher.close()
            await dispatcher.outbox.close()
    return result.conversation_id


async def _statuses(database: Database, conversation_id: str) -> list[str]:
    async with database.session() as s:
        return list((await s.scalars(select(Message.status).where(
            Message.conversation_id == conversation_id, Message.direction == Direction.OUT).order_by(Message.id))).all())


@pytest.mark.parametrize("queued", [False, True])
async def test_the_core_calls_the_connectors_delivery_for_turns_and_agent_messages(
    database: Database, engine_url: str, queued: bool
) -> None:
    delivery = Recording(queued)
    probe = Probe(delivery)
    conversation_id = await _turn(database, engine_url, probe)
    assert [[m.text for m in c.messages] for c in delivery.calls] == [["bot:greet"], ["vom Team"]]
    assert [c.address for c in delivery.calls] == [ChannelAddress("probe", "p1")] * 2
    # Queued: they waited in the outbox until the delivery sent them. Otherwise delivered by being
    # stored: the outbox never sends them.
    assert [m.text for m in probe.sent] == (["bot:greet", "vom Team"] if queued else [])
    assert await _statuses(database, conversation_id) == [MessageStatus.SENT, MessageStatus.SENT]


async def test_live_push_is_best_effort(database: Database, engine_url: str) -> None:
    class Broken(Probe):
        async def send(self, address: ChannelAddress, message: OutboundMessage) -> str:
            raise ConnectionError("socket gone")

    conversation_id = await _turn(database, engine_url, Broken(PushedLive()))
    # Stored as delivered: the customer gets them with the history when they come back.
    assert await _statuses(database, conversation_id) == [MessageStatus.SENT, MessageStatus.SENT]


def test_built_in_channels_choose_their_delivery() -> None:
    assert isinstance(load("rest").delivery, Returned)
    assert isinstance(load("webchat").delivery, PushedLive)
    for name in ("telegram", "sms", "whatsapp"):
        assert isinstance(load(name).delivery, ThroughOutbox), name
    for attribute in ("pull", "live_push"):
        assert not hasattr(Connector, attribute)
