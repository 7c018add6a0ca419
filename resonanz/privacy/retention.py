"""Retention: conversations without activity for `Settings.retention_days` go, with their
messages, ownership events, handovers, review items, verification attempts, media files and the engine's
tracker events. Due is a conversation that is closed or with the bot (never one waiting for or
with a person) whose last change (and closing) is older than the period. The customer's profile
and channel identities stay (a returning customer is known); `resonanz customer erase` removes
those. Run by a supervised task in every gateway (`retention_sweep_hours`) and by
`resonanz customer purge`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import delete, or_, select

from resonanz.privacy.scope import media_names
from resonanz.privacy.tracker import TrackerStore
from resonanz.store import Database
from resonanz.store.models import (
    ContinueCode, Conversation, ConversationEvent, Handover, Message, ReviewItem, VerificationAttempt,
)

log = structlog.get_logger(__name__)

# States in which nobody is or will be working on the conversation.
IDLE_STATES = ("bot", "closed")
BATCH = 200


async def due_conversations(db: Database, days: int, now: datetime, limit: int = BATCH) -> list[str]:
    cutoff = now - timedelta(days=days)
    async with db.session() as s:
        return list(await s.scalars(
            select(Conversation.id)
            .where(Conversation.state.in_(IDLE_STATES), Conversation.updated_at < cutoff,
                   or_(Conversation.closed_at.is_(None), Conversation.closed_at < cutoff))
            .order_by(Conversation.updated_at).limit(limit)))


async def purge_expired(db: Database, var_dir: Path, days: int, now: datetime | None = None) -> dict[str, int]:
    """Delete what is due; the numbers deleted. `days` <= 0: keep everything."""
    counts: dict[str, int] = {}
    if days <= 0:
        return counts
    now = now or datetime.now(UTC)
    while ids := await due_conversations(db, days, now):
        convs = frozenset(ids)
        async with db.session() as s:
            names = await media_names(s, convs)
        # Tracker events first: a failure leaves the conversation due, and the next run repeats.
        batch = {"engine_events": await TrackerStore(db, var_dir).erase(convs)}
        async with db.session() as s:
            for table, stmt in (
                ("review_items", delete(ReviewItem).where(ReviewItem.conversation_id.in_(convs))),
                ("messages", delete(Message).where(Message.conversation_id.in_(convs))),
                ("conversation_events", delete(ConversationEvent).where(ConversationEvent.conversation_id.in_(convs))),
                ("handovers", delete(Handover).where(Handover.conversation_id.in_(convs))),
                ("verification_attempts", delete(VerificationAttempt).where(VerificationAttempt.conversation_id.in_(convs))),
                ("continue_codes", delete(ContinueCode).where(ContinueCode.conversation_id.in_(convs))),
                ("conversations", delete(Conversation).where(Conversation.id.in_(convs))),
            ):
                batch[table] = (await s.execute(stmt)).rowcount  # type: ignore[attr-defined]
        batch["media_files"] = 0
        for name in names:
            path = var_dir / "media" / name
            if path.is_file():
                path.unlink()
                batch["media_files"] += 1
        for k, v in batch.items():
            counts[k] = counts.get(k, 0) + v
    if counts:
        log.info("retention.purged", days=days, **counts)
    return counts


async def run_periodically(db: Database, var_dir: Path, days: int, every_seconds: float) -> None:
    """The retention task (under the app's TaskSupervisor, restarted after a failure)."""
    while True:
        await purge_expired(db, var_dir, days)
        await asyncio.sleep(every_seconds)  # a schedule, not a synchronisation
