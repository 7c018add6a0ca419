"""Persisted ownership transitions: atomic, versioned, recorded as events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from handover.state import State, check_transition
from resonanz.store.models import Conversation, ConversationEvent, utcnow


class ConcurrentTransition(Exception):
    """Someone else changed the conversation's state first."""


async def transition(
    session: AsyncSession,
    conversation: Conversation,
    target: State,
    *,
    reason: str,
    actor: str,
    data: dict[str, Any] | None = None,
) -> ConversationEvent:
    """Move `conversation` to `target` inside the caller's transaction.

    The UPDATE checks the version read earlier, so of two concurrent transitions exactly one wins;
    the loser gets `ConcurrentTransition` and its transaction rolls back.
    """
    current = State(conversation.state)
    check_transition(current, target)
    now = utcnow()
    values: dict[str, Any] = {
        "state": target.value,
        "state_reason": reason,
        "version": conversation.version + 1,
        "updated_at": now,
    }
    if target is State.CLOSED:
        values["closed_at"] = now
    result = await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation.id, Conversation.version == conversation.version)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise ConcurrentTransition(conversation.id)
    for key, value in values.items():
        # Already written by the UPDATE above: reflect it without marking the object dirty.
        set_committed_value(conversation, key, value)
    event = ConversationEvent(
        conversation_id=conversation.id,
        from_state=current.value,
        to_state=target.value,
        reason=reason,
        actor=actor,
        data=data or {},
        created_at=now,
    )
    session.add(event)
    return event


def restart_engine_session(conv: Conversation) -> None:
    """Back to the bot: a fresh engine session with the carried slots, not mid-dialogue."""
    conv.engine_session += 1
    conv.engine_turns = 0
    conv.active_loop = None
    conv.consecutive_fallbacks = 0
