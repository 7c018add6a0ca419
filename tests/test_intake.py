"""Storing an inbound message (bot/intake.py), on SQLite and PostgreSQL: the common cases — a
known sender writing into their open conversation, a sender never seen before — are two
statements that commit by themselves on PostgreSQL (no BEGIN and COMMIT), and every other case
still takes the general path in one transaction.

(A single self-committing INSERT ... SELECT for known senders on PostgreSQL was tried twice: in
an earlier round ack p50 26 -> 18 ms but p99 178 -> 245 ms in bench/pipeline.py; on 2026-12-02,
as one statement with CTEs that also returns the lookup, no faster per message (2.3-2.5 ms wall
either way, sequentially) and first contacts slower. Neither was kept.)"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine.interfaces import CacheStats

from bot.intake import DispatchResult, Intake
from bot.leases import InboundLeases
from handover.auth import create_agent
from handover.read_model import conversation_scope, message_json
from connectors.base import ChannelAddress, InboundMessage
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, Customer, Handover, Message, Queue
from resonanz.store.vocabulary import MessageStatus


def inbound(sender: str, text: str, provider_id: str | None = None, **extra: Any) -> InboundMessage:
    return InboundMessage(channel="telegram", sender_id=sender, text=text, provider_message_id=provider_id,
                          address=ChannelAddress("telegram", sender), **extra)


class Trips:
    """Statements the database saw."""

    def __init__(self, db: Database) -> None:
        self.statements: list[str] = []
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._statement)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement.split()[0].upper())


def transactions(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Transactions asyncpg is asked to start (each a BEGIN and a COMMIT round trip)."""
    started: list[object] = []
    original = asyncpg.connection.Connection.transaction

    def transaction(self: Any, *args: Any, **kwargs: Any) -> Any:
        started.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "transaction", transaction)
    return started


async def test_after_the_warm_up_storing_the_common_cases_compiles_nothing(database: Database) -> None:
    """SQLAlchemy compiles a statement on its first use (about 20 ms of CPU for these): the gateway
    does that at start-up, not in the first acknowledgements after it (bench/pipeline.py --burst)."""
    intake = Intake(db=database, leases=InboundLeases(db=database, settings=Settings(), owner="me:1"), desk=lambda: None)
    await intake.warm()
    compiled: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        if context.cache_hit is not CacheStats.CACHE_HIT:
            compiled.append(statement.split()[0])

    event.listen(database.engine.sync_engine, "after_cursor_execute", executed)
    sender = str(random.randint(10**8, 10**9))
    first = await intake.store(inbound(sender, "Hallo", "w1", display_name="Ada"))
    second = await intake.store(inbound(sender, "Zählerstand 8200", "w2", display_name="Ada"))
    assert not isinstance(first, DispatchResult) and not isinstance(second, DispatchResult)
    assert first[1] == second[1]
    assert compiled == []
    async with database.session() as s:  # the warm-up's rows were rolled back
        assert (await s.scalar(select(func.count()).select_from(ChannelIdentity))) == 1
        assert (await s.scalar(select(func.count()).select_from(Message))) == 2


async def test_a_known_senders_message_is_two_statements(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """... each committing by itself on PostgreSQL: no BEGIN and COMMIT round trips."""
    intake = Intake(db=database, leases=InboundLeases(db=database, settings=Settings(), owner="me:1"), desk=lambda: None)
    sender = str(random.randint(10**8, 10**9))
    first = await intake.store(inbound(sender, "Hallo", "u1", display_name="Ada"))
    assert not isinstance(first, DispatchResult)
    trips, begun = Trips(database), transactions(monkeypatch)
    second = await intake.store(inbound(sender, "Zählerstand 8200", "u2", display_name="Ada"))
    assert not isinstance(second, DispatchResult)
    pk, conversation_id, public_id, to_agent = second
    assert conversation_id == first[1] and to_agent is None
    assert trips.statements == ["SELECT", "INSERT"] and begun == []
    async with database.session() as s:
        row = await s.get(Message, pk)
    assert (row.public_id, row.conversation_id, row.text, row.status, row.lease_owner, row.sender_id) == (
        public_id, conversation_id, "Zählerstand 8200", MessageStatus.RECEIVED, "me:1", sender)
    assert row.customer_id is not None and row.metadata_ == {} and row.attachments == []
    # The same provider id again: stored once, answered as a duplicate.
    again = await intake.store(inbound(sender, "Zählerstand 8200", "u2", display_name="Ada"))
    assert isinstance(again, DispatchResult) and again.duplicate and again.message_id == public_id


async def test_a_message_into_a_conversation_an_agent_owns_is_two_statements_too(database: Database) -> None:
    """The relay to the agent starts with this write: processed at once, no lease, no turn."""
    intake = Intake(db=database, leases=InboundLeases(db=database, settings=Settings(), owner="me:1"), desk=lambda: None)
    sender = str(random.randint(10**8, 10**9))
    first = await intake.store(inbound(sender, "Hallo", "w1"))
    assert not isinstance(first, DispatchResult)
    agent = await create_agent(database, email=f"a{random.randint(1, 10**9)}@example.org", password="geheim-geheim-42",
                               display_name="Petra")
    async with database.session() as s:  # an agent owns the conversation now
        (await s.get(Conversation, first[1])).state = "agent"
        queue = await s.scalar(select(Queue).limit(1))
        if queue is None:
            queue = Queue(name="Allgemein", skill="general", language="de")
            s.add(queue)
            await s.flush()
        conv = await s.get(Conversation, first[1])
        s.add(Handover(conversation_id=conv.id, customer_id=conv.customer_id, queue_id=queue.id, reason="customer_request",
                       trigger="intent:request_human", status="assigned", agent_id=agent.id, context={}))
    trips = Trips(database)
    stored = await intake.store(inbound(sender, "Sind Sie noch da?", "w2"))
    # The message, and in the same transaction who may see it (the consoles' event needs no
    # second transaction): select, insert, select.
    assert trips.statements == ["SELECT", "INSERT", "SELECT"]
    assert not isinstance(stored, DispatchResult)
    pk, conversation_id, public_id, to_agent = stored
    async with database.session() as s:
        row = await s.get(Message, pk)
        assert (row.status, row.lease_owner, row.lease_expires_at, row.conversation_id) == (
            MessageStatus.PROCESSED, None, None, first[1])
        assert row.processed_at is not None
        assert to_agent is not None
        assert to_agent.message == message_json(row)  # what the consoles get is what is stored
        h = await s.scalar(select(Handover).where(Handover.conversation_id == conversation_id)
                           .order_by(Handover.created_at.desc()).limit(1))
        assert (to_agent.handover_id, to_agent.scope) == (h.id, await conversation_scope(s, conv, {}, h))
        assert to_agent.scope["agents"] == [agent.id] and to_agent.scope["queues"] == [[queue.skill, queue.language]]


async def test_anything_else_takes_the_general_path(database: Database) -> None:
    intake = Intake(db=database, leases=InboundLeases(db=database, settings=Settings(), owner="me:1"), desk=lambda: None)
    sender = str(random.randint(10**8, 10**9))
    first = await intake.store(inbound(sender, "Hallo", "v1"))
    assert not isinstance(first, DispatchResult)
    async with database.session() as s:  # an agent owns the conversation now
        conv = await s.get(Conversation, first[1])
        conv.state = "agent"
    to_agent = await intake.store(inbound(sender, "Sind Sie noch da?", "v2"))
    assert not isinstance(to_agent, DispatchResult) and to_agent[1] == first[1] and to_agent[3] is not None
    # A name learnt later is stored (the general path updates the customer).
    named = await intake.store(inbound(str(random.randint(10**8, 10**9)), "Hi", "v3"))
    assert not isinstance(named, DispatchResult)
    async with database.session() as s:
        statuses = (await s.scalars(select(Message.status).where(Message.conversation_id == first[1])
                                    .order_by(Message.id))).all()
    assert statuses == [MessageStatus.RECEIVED, MessageStatus.PROCESSED]


@pytest.mark.parametrize("change", ["address", "name", "key", "verified", "channel"])
async def test_a_known_sender_with_anything_new_takes_the_general_path(database: Database, change: str) -> None:
    """The two-statement path stores nothing when anything about a known sender is new; the
    general path then stores the message and learns the change."""
    intake = Intake(db=database, leases=InboundLeases(db=database, settings=Settings(), owner="me:1"), desk=lambda: None)
    sender = f"+49{random.randint(10**9, 10**10)}"
    key = "phone:" + sender
    first = await intake.store(inbound(sender, "Hallo", "c1", **({"customer_key": key} if change == "verified" else {})))
    assert not isinstance(first, DispatchResult)
    if change == "channel":  # the conversation went on on another channel (a continue code, say)
        async with database.session() as s:
            (await s.get(Conversation, first[1])).channel = "whatsapp"
    address = ChannelAddress("telegram", sender, {"thread": "7"} if change == "address" else {})
    second = await intake.store(InboundMessage(
        channel="telegram", sender_id=sender, text="Zählerstand 8200", provider_message_id="c2", address=address,
        display_name="Ada" if change == "name" else None,
        customer_key=key if change in ("key", "verified") else None, key_verified=change == "verified"))
    assert not isinstance(second, DispatchResult) and second[1] == first[1]
    async with database.session() as s:
        identity = await s.scalar(select(ChannelIdentity).where(ChannelIdentity.channel == "telegram",
                                                                ChannelIdentity.external_id == sender))
        customer = await s.get(Customer, identity.customer_id)
        conv = await s.get(Conversation, first[1])
        stored = await s.get(Message, second[0])
    assert stored.text == "Zählerstand 8200" and stored.conversation_id == conv.id
    learnt = {"address": (identity.address, conv.address) == (address.to_dict(), address.to_dict()),
              "name": customer.name == "Ada", "key": identity.customer_key == key,
              "verified": identity.verified_by is not None, "channel": conv.channel == "telegram"}
    assert learnt[change], (change, identity.address, conv.address, conv.channel)


async def test_a_first_contact_is_one_insert_on_postgresql_and_plain_inserts_on_sqlite(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sender never seen before: customer, identity, conversation and message without the ORM's
    unit of work — on PostgreSQL one statement (inserts chained as CTEs), on SQLite four inserts.
    The rows are those the general path writes."""
    intake = Intake(db=database, leases=InboundLeases(db=database, settings=Settings(), owner="me:1"), desk=lambda: None)
    sender = str(random.randint(10**8, 10**9))
    await intake.store(inbound("someone else", "Hallo"))  # the pool's connection is in use, not pinged
    trips, begun = Trips(database), transactions(monkeypatch)
    stored = await intake.store(inbound(sender, "Hallo", "f1", display_name="Ada", language_hint="de"))
    postgres = database.engine.dialect.name == "postgresql"
    assert trips.statements == (["SELECT", "WITH"] if postgres else ["SELECT"] + ["INSERT"] * 4)
    assert begun == []  # PostgreSQL: two round trips in all
    assert not isinstance(stored, DispatchResult)
    pk, conversation_id, public_id, to_agent = stored
    assert to_agent is None
    async with database.session() as s:
        row = await s.get(Message, pk)
        conv = await s.get(Conversation, conversation_id)
        customer = await s.get(Customer, row.customer_id)
        identity = await s.scalar(select(ChannelIdentity).where(ChannelIdentity.channel == "telegram",
                                                                ChannelIdentity.external_id == sender))
    assert (row.public_id, row.status, row.lease_owner, row.text, row.provider_message_id) == (
        public_id, MessageStatus.RECEIVED, "me:1", "Hallo", "f1")
    assert (customer.name, customer.language, customer.customer_number) == ("Ada", "de", None)
    assert (identity.customer_id, identity.address, identity.opted_out, identity.customer_key, identity.verified_by) == (
        customer.id, {"channel": "telegram", "recipient": sender, "extra": {}}, False, None, None)
    assert (conv.customer_id, conv.channel, conv.address, conv.state, conv.language, conv.slots, conv.version,
            conv.engine_session, conv.engine_turns, conv.consecutive_fallbacks, conv.fallback_count) == (
        customer.id, "telegram", identity.address, "bot", "de", {}, 0, 0, 0, 0, 0)
    assert conv.created_at is not None and customer.created_at is not None and identity.created_at is not None
    # The next message is a known sender's, into the same conversation.
    second = await intake.store(inbound(sender, "Zählerstand 8200", "f2", display_name="Ada"))
    assert not isinstance(second, DispatchResult) and second[1] == conversation_id


async def test_two_first_messages_of_one_sender_at_once_make_one_customer(database: Database) -> None:
    """Both take the first-contact path; the unique identity lets one win, and the other's retry
    finds the winner's customer and conversation."""
    intake = Intake(db=database, leases=InboundLeases(db=database, settings=Settings(), owner="me:1"), desk=lambda: None)
    sender = str(random.randint(10**8, 10**9))
    results = await asyncio.gather(*(intake.store(inbound(sender, text, pid))
                                     for text, pid in (("Hallo", "c1"), ("Hallo?", "c2"), ("Hi", "c3"))))
    assert all(not isinstance(r, DispatchResult) for r in results)
    assert len({r[1] for r in results}) == 1
    async with database.session() as s:
        customers = (await s.scalars(select(Message.customer_id).where(Message.sender_id == sender))).all()
        identities = (await s.scalars(select(ChannelIdentity.id).where(ChannelIdentity.external_id == sender))).all()
    assert len(set(customers)) == 1 and len(customers) == 3 and len(identities) == 1


async def test_a_first_contact_with_a_key_another_channel_knows_joins_that_customer(database: Database) -> None:
    """A customer key (the same phone number on SMS and WhatsApp): the first of them is a plain
    first contact in as many statements (the sender's lookup also asks whether the key is known);
    the second joins its customer, which only the general path does."""
    intake = Intake(db=database, leases=InboundLeases(db=database, settings=Settings(), owner="me:1"), desk=lambda: None)
    await intake.store(inbound("someone else", "Hallo"))  # the pool's connection is in use, not pinged
    key = f"+49{random.randint(10**9, 10**10)}"
    trips = Trips(database)
    sms = await intake.store(InboundMessage(channel="sms", sender_id=key, text="Hallo", customer_key=key,
                                            address=ChannelAddress("sms", key)))
    postgres = database.engine.dialect.name == "postgresql"
    assert trips.statements == (["SELECT", "WITH"] if postgres else ["SELECT"] + ["INSERT"] * 4)
    trips.statements.clear()
    whatsapp = await intake.store(InboundMessage(channel="whatsapp", sender_id=key, text="Hallo", customer_key=key,
                                                 address=ChannelAddress("whatsapp", key)))
    assert not isinstance(sms, DispatchResult) and not isinstance(whatsapp, DispatchResult)
    async with database.session() as s:
        owners = (await s.scalars(select(Message.customer_id).where(Message.id.in_([sms[0], whatsapp[0]])))).all()
    assert len(set(owners)) == 1
    assert trips.statements[0] == "SELECT" and "WITH" not in trips.statements  # the key known: the general path
    async with database.session() as s:
        keys = (await s.scalars(select(ChannelIdentity.customer_key).where(ChannelIdentity.external_id == key))).all()
    assert keys == [key, key]
