"""The gateway's tables. Alembic migrations in `migrations/` are generated from these."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false as sa_false,
    text as sa_text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class UTCDateTime(TypeDecorator[datetime]):
    """SQLite keeps no time zone; this hands back aware UTC datetimes on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    customer_number: Mapped[str | None] = mapped_column(String(32), index=True)
    preference: Mapped[str | None] = mapped_column(String(32))
    # What agents note about the customer (the console's profile); exported and erased with the row.
    notes: Mapped[str | None] = mapped_column(Text)
    # The channel the customer moved their conversation to last (a continue code); cleared with
    # "forget my preference" like `preference`.
    preferred_channel: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChannelIdentity(Base):
    """A customer as one channel knows them (a REST sender, a web chat session, a phone number)."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_identity_channel_external"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(200))
    address: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Links identities of one person across channels (e.g. "phone:+49151..." on WhatsApp and SMS).
    customer_key: Mapped[str | None] = mapped_column(String(200), index=True)
    # The customer asked this channel to stop (SMS STOP): nothing is sent until they opt in again.
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    # How and when this identity was shown to be the customer's (vocabulary.IdentityProof); None:
    # only that someone wrote from it. The latest proof wins.
    verified_by: Mapped[str | None] = mapped_column(String(32))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_customer_state", "customer_id", "state"),
        Index("ix_conversations_created_at", "created_at"),  # the reports' date ranges
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="bot")
    state_reason: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))
    # Slots that survive an engine session (customer number, name, language, ...).
    slots: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    engine_session: Mapped[int] = mapped_column(Integer, default=0)
    engine_turns: Mapped[int] = mapped_column(Integer, default=0)
    active_loop: Mapped[str | None] = mapped_column(String(64))
    consecutive_fallbacks: Mapped[int] = mapped_column(Integer, default=0)
    fallback_count: Mapped[int] = mapped_column(Integer, default=0)
    # Optimistic concurrency: every state change bumps it and checks the old value.
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ConversationEvent(Base):
    """An ownership transition, persisted in the same transaction as the state change."""

    __tablename__ = "conversation_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """Every message in and out. An inbound message is stored before its webhook is answered."""

    __tablename__ = "messages"
    __table_args__ = (
        # A provider id is unique per sender, not per channel: a REST message_id or a web chat
        # client_id is chosen by the client, and one customer's id must not swallow another's message.
        UniqueConstraint("channel", "sender_id", "provider_message_id", name="uq_message_sender_provider_id"),
        # Delivery status callbacks find our outbound message by the provider's id alone.
        Index("ix_messages_channel_provider_id", "channel", "provider_message_id"),
        Index("ix_messages_conversation_seq", "conversation_id", "id"),
        Index("ix_messages_status", "direction", "status"),
        # The reports: date ranges, and the first agent reply after a handover.
        Index("ix_messages_created_at", "created_at", "direction"),  # index-only counts by time
        Index("ix_messages_agent_replies", "conversation_id", "created_at",
              postgresql_where=sa_text("author = 'agent' AND direction = 'out'"),
              sqlite_where=sa_text("author = 'agent' AND direction = 'out'")),
        # The reports' intents and not-understood rate: an index-only scan.
        Index("ix_messages_intents", "created_at", "intent", "intent_confidence",
              postgresql_where=sa_text("intent IS NOT NULL"), sqlite_where=sa_text("intent IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    channel: Mapped[str] = mapped_column(String(32))
    # Inbound only: the channel identity's external id (who sent it); the de-duplication scope.
    sender_id: Mapped[str | None] = mapped_column(String(200))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(4))  # "in" | "out" | "note" (internal)
    author: Mapped[str] = mapped_column(String(16))  # customer | bot | agent | system
    text: Mapped[str] = mapped_column(Text, default="")
    buttons: Mapped[list[Any]] = mapped_column(JSON, default=list)
    attachments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    parse_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Inbound: the engine's intent and confidence, also in parse_data; kept apart so the reports
    # count a year of them from an index instead of parsing every message's JSON.
    intent: Mapped[str | None] = mapped_column(String(128))
    intent_confidence: Mapped[float | None] = mapped_column(Float)
    # in: received -> processed
    # out: pending -> sending -> sent (-> delivered | read) | pending (retry) | failed | unknown
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The outbox's schedule: a retry is not attempted before this time.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who is sending it (`sending`), and until when: recovery takes only expired leases, so a
    # start-up or a peer never marks a live process's send as interrupted.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebChatSession(Base):
    """A web chat customer's session. The browser holds a random token the server issued; only its
    SHA-256 is stored, so a copy of the database opens no chat. `id` is the public identity
    (the channel identity's external id and the address the replies go to)."""

    __tablename__ = "webchat_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Idle expiry counts from here (refreshed when the customer connects or writes).
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


# --- Human handover (agents, queues, handovers) ------------------------------------------------


class Agent(Base):
    """A person who takes conversations in the console. `role` is "agent", "admin" or "trainer"
    (reviews what the bot missed, takes no conversations)."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="agent")
    status: Mapped[str] = mapped_column(String(16), default="offline")  # online | away | offline
    capacity: Mapped[int] = mapped_column(Integer, default=3)
    skills: Mapped[list[Any]] = mapped_column(JSON, default=list)
    languages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # SHA-256 of a bearer token for the agent API (the token itself is shown once), and when it
    # ends. Revoking the token empties both.
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    api_token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The URL of the agent's picture (a shared media file, `/media/<name>`), shown beside their
    # name on their messages in the web chat; None = no picture.
    avatar: Mapped[str | None] = mapped_column(String(500))


class AgentSession(Base):
    """A console login. Only the token's SHA-256 is stored."""

    __tablename__ = "agent_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Queue(Base):
    """Where waiting handovers line up: one per skill and language. Business hours are
    {"timezone": "Europe/Berlin", "days": {"mon": [["08:00", "18:00"]], ...}}; empty = always open."""

    __tablename__ = "queues"
    __table_args__ = (UniqueConstraint("skill", "language", name="uq_queue_skill_language"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    skill: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    business_hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Handover(Base):
    """One hand-over of a conversation to people, with the context the agent sees.

    status: waiting -> offered -> assigned -> closed | returned; waiting|offered -> cancelled
    (customer went back to the bot) | abandoned.
    """

    __tablename__ = "handovers"
    __table_args__ = (
        Index("ix_handovers_status_queue", "status", "queue_id"),
        Index("ix_handovers_created_at", "created_at"),  # the reports' date ranges
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    queue_id: Mapped[str | None] = mapped_column(ForeignKey("queues.id"))
    reason: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="waiting")
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[str] = mapped_column(Text, default="")
    sentiment: Mapped[float | None] = mapped_column(Numeric(6, 3, asdecimal=False))
    offered_agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"))
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When an unanswered offer goes on to the next agent: any gateway process's sweeper does it.
    offer_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Agents whose offer ran out or who were skipped; the next offer goes to someone else.
    declined_by: Mapped[list[Any]] = mapped_column(JSON, default=list)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"), index=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    transfer_note: Mapped[str | None] = mapped_column(Text)
    resolution: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rating: Mapped[int | None] = mapped_column(Integer)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    survey_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_position_told: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VerificationAttempt(Base):
    """One step-up verification attempt (bot/verification.py). Failures count against the
    conversation and against the customer number (known or not), so limits hold across
    conversations and gateway processes; a success row carries the verified state's expiry.
    `conversation_id` is a plain key, not a foreign key: actions called without a gateway
    conversation key it by the engine's sender id."""

    __tablename__ = "verification_attempts"
    __table_args__ = (
        Index("ix_verification_attempts_conversation", "conversation_id", "id"),
        Index("ix_verification_attempts_number_time", "customer_number", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(200))
    customer_number: Mapped[str] = mapped_column(String(64))
    # pending (being checked; counts as a failure) | failed | verified | locked (refused unchecked)
    outcome: Mapped[str] = mapped_column(String(16))
    verified_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DataAccess(Base):
    """Who opened or changed which customer's data (resonanz.privacy.audit): an export, an erasure,
    a handover's transcript in the console. Plain keys, no foreign keys: the entry outlives the
    agent's deactivation, and an erasure removes the customer's entries and leaves one of its own
    without a customer id."""

    __tablename__ = "data_access_log"
    __table_args__ = (Index("ix_data_access_customer_time", "customer_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    actor_id: Mapped[str] = mapped_column(String(64))  # an agent's id, or "cli"
    actor_role: Mapped[str] = mapped_column(String(16))  # agent | admin | operator
    action: Mapped[str] = mapped_column(String(32))  # DataAction
    customer_id: Mapped[str | None] = mapped_column(String(32))
    subject: Mapped[str | None] = mapped_column(String(64))  # e.g. the handover opened
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class CannedResponse(Base):
    """A prepared answer agents insert in the console (typing "/" and its shortcut), per language."""

    __tablename__ = "canned_responses"
    __table_args__ = (UniqueConstraint("shortcut", "language", name="uq_canned_shortcut_language"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    shortcut: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ReviewItem(Base):
    """A customer message the bot missed (not understood, or understood with low confidence), kept
    for a trainer to label (resonanz.review). It belongs to the customer: erased and exported with
    them. `group_key` is the normalised text, so that the same kind of message is counted once."""

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_status_group", "status", "group_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    # The message's row (messages.id): its place in the conversation.
    message_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    text: Mapped[str] = mapped_column(Text)
    group_key: Mapped[str] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))  # ReviewReason
    # What the engine made of it.
    intent: Mapped[str | None] = mapped_column(String(100))
    confidence: Mapped[float | None] = mapped_column(Numeric(6, 3, asdecimal=False))
    # The turn (or the fallbacks before it) sent the customer to a person.
    handed_over: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    status: Mapped[str] = mapped_column(String(16), default="open")  # ReviewStatus
    label_intent: Mapped[str | None] = mapped_column(String(100))
    # [{"start": 0, "end": 8, "entity": "customer_number", "value": "40012345"}], offsets into `text`.
    label_entities: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reviewer_id: Mapped[str | None] = mapped_column(String(32))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ContinueCode(Base):
    """A single-use, short-lived code that moves one conversation to another device or channel
    (resonanz/continuity.py). Only the code's SHA-256 is stored. Plain keys, no foreign keys:
    retention and erasure delete conversations without looking here; codes of a conversation that
    is gone redeem to nothing, and expired rows are purged when new codes are issued."""

    __tablename__ = "continue_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(32), index=True)
    customer_id: Mapped[str] = mapped_column(String(32), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # Set once, by the one redemption that wins (a conditional UPDATE): then refused.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by: Mapped[str | None] = mapped_column(String(240))  # "channel:external id"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
