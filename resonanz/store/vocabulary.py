"""The stored vocabulary: every status, direction, author and role a row can carry.

They are StrEnums, so a member equals its string (``MessageStatus.SENT == "sent"``) and is stored
as that string; code compares and writes the members, never bare strings. The conversation's
owner (bot, queued, agent, closed) is `handover.state.State`.
"""

from __future__ import annotations

import enum


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"
    NOTE = "note"  # internal: never leaves the desk


class Author(enum.StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class MessageStatus(enum.StrEnum):
    """in: received -> processed.
    out: pending -> sending -> sent (-> delivered -> read) | pending (retry) | failed | unknown.
    note: internal."""

    RECEIVED = "received"
    PROCESSED = "processed"
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNKNOWN = "unknown"
    INTERNAL = "internal"


class HandoverStatus(enum.StrEnum):
    """waiting -> offered -> assigned -> closed | returned; waiting|offered -> cancelled | abandoned."""

    WAITING = "waiting"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    CLOSED = "closed"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"

    @classmethod
    def open(cls) -> tuple[HandoverStatus, ...]:
        """Still waiting for, or with, a person."""
        return (cls.WAITING, cls.OFFERED, cls.ASSIGNED)

    @classmethod
    def queued(cls) -> tuple[HandoverStatus, ...]:
        """Not yet taken by an agent."""
        return (cls.WAITING, cls.OFFERED)


class AgentStatus(enum.StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class AgentRole(enum.StrEnum):
    AGENT = "agent"
    ADMIN = "admin"
    # Reviews what the bot missed (the review queue) and takes no conversations.
    TRAINER = "trainer"
    SUPERVISOR = "supervisor"  # sees the reports (handover.auth.require(ADMIN, SUPERVISOR))


class ReviewReason(enum.StrEnum):
    """Why a customer message went to the review queue."""

    FALLBACK = "fallback"  # not understood (a fallback intent, or below `fallback_confidence`)
    LOW_CONFIDENCE = "low_confidence"  # understood, but below `review_confidence`


class ReviewStatus(enum.StrEnum):
    """open -> labelled (an intent, maybe entities: exported) | discarded."""

    OPEN = "open"
    LABELLED = "labelled"
    DISCARDED = "discarded"


class DataAction(enum.StrEnum):
    """What an audit entry (`data_access_log`) records."""

    EXPORT = "export"
    ERASE = "erase"
    VIEW_HANDOVER = "view_handover"
    MERGE = "merge"  # another customer merged into this one (subject: the merged customer's id)
    SPLIT = "split"  # an identity split off into a new customer (subject: the new customer's id)


class IdentityProof(enum.StrEnum):
    """How a channel identity was shown to belong to its customer (`channel_identities.verified_by`)."""

    SIGNED_IDENTITY = "signed_identity"  # the embedding site signed its user id (web chat)
    CONTINUE_CODE = "continue_code"  # a continue code the customer was given on another channel
    STEP_UP = "step_up"  # the customer passed step-up verification on this identity (bot/verification.py)
