"""The store on SQLite and PostgreSQL: migrations, constraints and atomic transitions."""

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from handover.service import ConcurrentTransition, transition
from handover.state import InvalidTransition, State
from resonanz.store import Database
from resonanz.store.models import Conversation, ConversationEvent, Customer, Message


async def _conversation(db: Database) -> str:
    async with db.session() as s:
        c = Customer(name="Erika Mustermann")
        s.add(c)
        await s.flush()
        conv = Conversation(customer_id=c.id, channel="rest", address={"channel": "rest", "recipient": "x"})
        s.add(conv)
        await s.flush()
        return conv.id


async def test_migrated_schema_round_trips_a_conversation(database: Database) -> None:
    conv_id = await _conversation(database)
    async with database.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        assert conv.state == "bot" and conv.version == 0 and conv.slots == {}
        assert conv.created_at.tzinfo is not None


async def test_transition_is_persisted_with_its_event(database: Database) -> None:
    conv_id = await _conversation(database)
    async with database.session() as s:
        conv = await s.get(Conversation, conv_id)
        await transition(s, conv, State.QUEUED, reason="customer_request", actor="bot", data={"trigger": "pattern"})
    async with database.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert (conv.state, conv.state_reason, conv.version) == ("queued", "customer_request", 1)
        events = (await s.scalars(select(ConversationEvent).where(ConversationEvent.conversation_id == conv_id))).all()
        assert [(e.from_state, e.to_state, e.reason, e.data) for e in events] == [
            ("bot", "queued", "customer_request", {"trigger": "pattern"})
        ]


async def test_invalid_transition_changes_nothing(database: Database) -> None:
    conv_id = await _conversation(database)
    with pytest.raises(InvalidTransition):
        async with database.session() as s:
            conv = await s.get(Conversation, conv_id)
            await transition(s, conv, State.QUEUED, reason="r", actor="a")
            await transition(s, conv, State.QUEUED, reason="r", actor="a")
    async with database.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv.state == "bot"  # the whole transaction rolled back
        assert await s.scalar(select(func.count()).select_from(ConversationEvent)) == 0


async def test_of_two_concurrent_transitions_exactly_one_wins(database: Database) -> None:
    conv_id = await _conversation(database)
    both_have_read = asyncio.Barrier(2)
    # Two gateway processes: each has its own connection pool (SQLite's is one connection).
    other = Database(database.url)

    async def attempt(target: State) -> str:
        db = database if target is State.QUEUED else other
        try:
            async with db.session() as s:
                conv = await s.get(Conversation, conv_id)
                assert conv.version == 0
                await both_have_read.wait()  # both decided from the same version
                await transition(s, conv, target, reason="race", actor=target.value)
            return "won"
        except ConcurrentTransition:
            return "lost"

    try:
        results = sorted(await asyncio.gather(attempt(State.QUEUED), attempt(State.AGENT)))
    finally:
        await other.dispose()
    assert results == ["lost", "won"]
    async with database.session() as s:
        assert await s.scalar(select(func.count()).select_from(ConversationEvent)) == 1
        conv = await s.get(Conversation, conv_id)
        assert conv.version == 1


async def test_provider_message_id_is_unique_per_channel_and_sender(database: Database) -> None:
    conv_id = await _conversation(database)
    async with database.session() as s:
        conv = await s.get(Conversation, conv_id)
        customer_id = conv.customer_id

    def msg(channel: str, sender: str = "s-1") -> Message:
        return Message(conversation_id=conv_id, customer_id=customer_id, channel=channel, sender_id=sender,
                       direction="in", author="customer", text="hi", provider_message_id="p-1", status="received")

    async with database.session() as s:
        s.add(msg("rest"))
        s.add(msg("webchat"))  # same provider id on another channel is another message
        s.add(msg("rest", "s-2"))  # and from another sender (issue #8 item 9)
    with pytest.raises(IntegrityError):
        async with database.session() as s:
            s.add(msg("rest"))
    async with database.session() as s:
        assert await s.scalar(select(func.count()).select_from(Message)) == 3
