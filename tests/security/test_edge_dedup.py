"""Issue #8 item 9: de-duplication by provider id is scoped to the sender.

Customer Y reusing customer X's `metadata.message_id` (REST) or web chat `client_id` must get
their own conversation and keep their message - and never learn X's conversation id. A true
redelivery (same sender, same id: a Telegram update_id, a Twilio MessageSid) is still stored once.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from connectors.base import ChannelAddress, InboundMessage
from resonanz.app import DISPATCHER
from resonanz.store.models import Message
from tests.conftest import BACKENDS
from connectors.fakes.telegram import text_update
from tests.security.edge_support import Edge, start_edge, twilio_inbound


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=BACKENDS)
async def edge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_telegram: Any,
               fake_twilio: Any) -> AsyncIterator[Edge]:
    async for e in start_edge(request.param, tmp_path_factory.mktemp("edge-dedup"), fake_telegram, fake_twilio):
        yield e


async def _texts(edge: Edge, **where: str) -> list[str]:
    async with edge.db.session() as s:
        query = select(Message.text).where(Message.direction == "in")
        for column, value in where.items():
            query = query.where(getattr(Message, column) == value)
        return list((await s.scalars(query.order_by(Message.id))).all())


async def _rest(edge: Edge, sender: str, text: str, message_id: str) -> dict[str, Any]:
    body = json.dumps({"sender": sender, "message": text, "metadata": {"message_id": message_id}}).encode()
    status, answer = await edge.send(edge.rest(body))
    assert status == 200, answer
    return answer


async def test_rest_message_id_of_another_sender_is_not_a_duplicate(edge: Edge) -> None:
    x = await _rest(edge, "dedup-x", "Ich bin X", "shared-id-1")
    y = await _rest(edge, "dedup-y", "Ich bin Y", "shared-id-1")
    assert y["conversation_id"] != x["conversation_id"], "Y must not learn X's conversation id"
    assert x["conversation_id"] not in json.dumps(y)
    assert await _texts(edge, provider_message_id="shared-id-1") == ["Ich bin X", "Ich bin Y"]
    # Y's own history is Y's: GET messages shows Y's conversation, not X's.
    async with edge.http.get(edge.url("/webhooks/rest/messages"), params={"sender": "dedup-y"},
                             headers=edge.rest(b"")[2]) as r:
        assert (await r.json())["conversation_id"] == y["conversation_id"]


async def test_rest_redelivery_by_the_same_sender_is_stored_once(edge: Edge) -> None:
    first = await _rest(edge, "dedup-z", "einmal", "z-1")
    again = await _rest(edge, "dedup-z", "einmal", "z-1")
    assert again["conversation_id"] == first["conversation_id"] and again["messages"] == []
    assert await _texts(edge, provider_message_id="z-1") == ["einmal"]


async def test_webchat_client_id_is_scoped_to_the_session(edge: Edge) -> None:
    """The web chat hands `client_id` to the dispatcher as the provider id."""
    dispatcher = edge.app[DISPATCHER]

    def inbound(session: str, text: str) -> InboundMessage:
        return InboundMessage(channel="webchat", sender_id=session, text=text, provider_message_id="c-1",
                              address=ChannelAddress("webchat", session))

    x = await dispatcher.handle(inbound("session-x", "X schreibt"))
    y = await dispatcher.handle(inbound("session-y", "Y schreibt"))
    assert not y.duplicate and y.conversation_id != x.conversation_id
    again = await dispatcher.handle(inbound("session-x", "X schreibt"))
    assert again.duplicate and again.conversation_id == x.conversation_id
    assert await _texts(edge, channel="webchat", provider_message_id="c-1") == ["X schreibt", "Y schreibt"]


async def test_telegram_and_twilio_redeliveries_are_still_stored_once(edge: Edge) -> None:
    update = json.dumps(text_update(88_000_001, 88_001, "Telegram einmal")).encode()
    for _ in range(2):
        status, answer = await edge.send(edge.telegram_update(update))
        assert status == 200, answer
    assert answer["duplicate"] is True
    for channel in ("whatsapp", "sms"):
        params = twilio_inbound(edge.twilio, channel, "+4915188000001", f"{channel} einmal", f"SMdedup{channel}{'1' * 24}")
        for _ in range(2):
            status, answer = await edge.send(edge.twilio_form(channel, "webhook", params))
            assert status == 200, answer
    async with edge.db.session() as s:
        counts = dict((await s.execute(
            select(Message.text, func.count()).where(Message.text.like("% einmal")).group_by(Message.text))).all())
    assert counts == {"Telegram einmal": 1, "whatsapp einmal": 1, "sms einmal": 1}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_migration_records_the_sender_of_earlier_messages(backend: str, tmp_path: Any) -> None:
    """Messages stored before the migration get their sender, so redeliveries of them are still
    recognised afterwards; outbound messages keep none."""
    import asyncio

    from sqlalchemy import text

    from resonanz.store import Database
    from resonanz.store.migrate import upgrade
    from tests.conftest import make_database_url

    url, drop = await make_database_url(backend, tmp_path)
    try:
        await asyncio.to_thread(upgrade, url, "b7c41e2f9a10")
        db = Database(url)
        now = "2026-11-30 12:00:00+00:00"
        statements = [
            f"INSERT INTO customers (id, created_at) VALUES ('cu1', '{now}'), ('cu2', '{now}')",
            "INSERT INTO channel_identities (customer_id, channel, external_id, address, opted_out, created_at) VALUES "
            f"('cu1', 'rest', 'alice', '{{}}', false, '{now}'), ('cu2', 'rest', 'bob', '{{}}', false, '{now}')",
            "INSERT INTO conversations (id, customer_id, channel, address, state, slots, engine_session, engine_turns,"
            " consecutive_fallbacks, fallback_count, version, created_at, updated_at) VALUES "
            f"('cv1', 'cu1', 'rest', '{{}}', 'bot', '{{}}', 0, 0, 0, 0, 0, '{now}', '{now}'),"
            f"('cv2', 'cu2', 'rest', '{{}}', 'bot', '{{}}', 0, 0, 0, 0, 0, '{now}', '{now}')",
            "INSERT INTO messages (public_id, conversation_id, customer_id, channel, provider_message_id, direction,"
            " author, text, buttons, attachments, metadata, status, attempts, created_at) VALUES "
            f"('m1', 'cv1', 'cu1', 'rest', 'id-1', 'in', 'customer', 'a', '[]', '[]', '{{}}', 'processed', 0, '{now}'),"
            f"('m2', 'cv2', 'cu2', 'rest', 'id-2', 'in', 'customer', 'b', '[]', '[]', '{{}}', 'processed', 0, '{now}'),"
            f"('m3', 'cv1', 'cu1', 'rest', 'out-1', 'out', 'bot', 'c', '[]', '[]', '{{}}', 'sent', 1, '{now}')",
        ]
        async with db.session() as s:
            for statement in statements:
                await s.execute(text(statement))
        await db.dispose()
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        async with db.session() as s:
            rows = dict((await s.execute(select(Message.public_id, Message.sender_id))).all())
        assert rows == {"m1": "alice", "m2": "bob", "m3": None}
        await db.dispose()
    finally:
        await drop()
