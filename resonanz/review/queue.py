"""The review queue in the database: what trainers see and what they decide.

A trainer sees kinds of message (items grouped by `group_key`) with how often each came, one item
with the conversation around it, and labels or discards a whole kind at once. Nothing here names
the customer: no id, name, number, channel or address leaves this module, and the conversation's
other messages are shown with the customer's known name and number masked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from resonanz.errors import Conflict, Invalid, NotFound
from resonanz.store import Database
from resonanz.store.models import Conversation, Customer, Message, ReviewItem, utcnow
from resonanz.store.vocabulary import Direction, ReviewStatus

# How many of the conversation's messages are shown before and after the missed one.
CONTEXT_BEFORE, CONTEXT_AFTER = 8, 4
GROUPS_LIMIT = 200
INTENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
MASK = "•••"


@dataclass(frozen=True)
class EntityMark:
    """A span of the example's text that is an entity value (offsets into the text)."""

    start: int
    end: int
    entity: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def groups(db: Database, status: ReviewStatus = ReviewStatus.OPEN, limit: int = GROUPS_LIMIT) -> list[dict[str, Any]]:
    """The kinds of message in the queue with `status`, the most frequent first: how often each
    came, its latest wording (and a few others), why it was collected, whether it led to a person."""
    async with db.session() as s:
        rows = (await s.execute(
            select(ReviewItem.group_key, func.count(), func.min(ReviewItem.created_at), func.max(ReviewItem.created_at))
            .where(ReviewItem.status == status).group_by(ReviewItem.group_key)
            .order_by(func.count().desc(), func.max(ReviewItem.created_at).desc()).limit(limit))).all()
        keys = [r[0] for r in rows]
        items = (await s.execute(
            select(ReviewItem.id, ReviewItem.group_key, ReviewItem.text, ReviewItem.reason, ReviewItem.intent,
                   ReviewItem.language, ReviewItem.handed_over, ReviewItem.label_intent)
            .where(ReviewItem.status == status, ReviewItem.group_key.in_(keys))
            .order_by(ReviewItem.created_at.desc(), ReviewItem.id))).all() if keys else []
    by_key: dict[str, list[Any]] = {}
    for it in items:
        by_key.setdefault(it.group_key, []).append(it)
    out = []
    for key, count, first, last in rows:
        members = by_key.get(key, [])
        reasons: dict[str, int] = {}
        for it in members:
            reasons[it.reason] = reasons.get(it.reason, 0) + 1
        out.append({
            "key": key,
            "count": int(count),
            "item_id": members[0].id if members else None,
            "text": members[0].text if members else "",
            "texts": list(dict.fromkeys(it.text for it in members))[:5],
            "reasons": reasons,
            "handed_over": sum(1 for it in members if it.handed_over),
            "languages": sorted({it.language for it in members if it.language}),
            "intents": sorted({it.intent for it in members if it.intent}),
            "label_intent": members[0].label_intent if members else None,
            "first_seen": _iso(first),
            "last_seen": _iso(last),
        })
    return out


def _masker(customer: Customer | None, numbers: Sequence[str]) -> Any:
    secrets = [v for v in ([customer.name] if customer and customer.name else []) + list(numbers) if v and len(v) >= 3]
    if not secrets:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(v) for v in sorted(secrets, key=len, reverse=True)), re.IGNORECASE)
    return lambda text: pattern.sub(MASK, text)


async def item_detail(db: Database, item_id: str) -> dict[str, Any]:
    """One item with the conversation around it (customer, bot and agent messages; no internal
    notes), the customer's known name and customer number masked in the other messages."""
    async with db.session() as s:
        item = await s.get(ReviewItem, item_id)
        if item is None:
            raise NotFound("no such review item")
        conv = await s.get(Conversation, item.conversation_id)
        customer = await s.get(Customer, item.customer_id)
        numbers = [str(n) for n in ((customer.customer_number if customer else None),
                                   (conv.slots or {}).get("customer_number") if conv else None) if n]
        mask = _masker(customer, numbers)
        visible = (Message.conversation_id == item.conversation_id, Message.direction != Direction.NOTE)
        anchor = item.message_id
        if anchor is None:
            anchor = await s.scalar(select(func.max(Message.id)).where(*visible)) or 0
        before = (await s.scalars(select(Message).where(*visible, Message.id <= anchor)
                                  .order_by(Message.id.desc()).limit(CONTEXT_BEFORE + 1))).all()
        after = (await s.scalars(select(Message).where(*visible, Message.id > anchor)
                                 .order_by(Message.id).limit(CONTEXT_AFTER))).all()
        count = await s.scalar(select(func.count()).where(ReviewItem.group_key == item.group_key,
                                                          ReviewItem.status == item.status))
        context = [{"author": m.author, "text": m.text if m.id == item.message_id else mask(m.text or ""),
                    "at": _iso(m.created_at), "missed": m.id == item.message_id}
                   for m in [*reversed(before), *after]]
        return {
            "id": item.id, "text": item.text, "key": item.group_key, "count": int(count or 0),
            "reason": item.reason, "intent": item.intent, "confidence": item.confidence, "language": item.language,
            "handed_over": item.handed_over, "status": item.status, "label_intent": item.label_intent,
            "label_entities": list(item.label_entities or []), "created_at": _iso(item.created_at),
            "conversation": context,
        }


def _check_marks(text: str, marks: Sequence[EntityMark], entities: Sequence[str] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    last_end = 0
    for m in sorted(marks, key=lambda m: m.start):
        if not 0 <= m.start < m.end <= len(text):
            raise Invalid(f"entity span {m.start}-{m.end} is outside the text")
        if m.start < last_end:
            raise Invalid("entity spans overlap")
        value = text[m.start:m.end]
        if value != value.strip() or not value.strip():
            raise Invalid("an entity span starts or ends with a space")
        if "\n" in value or any(c in value for c in "[]()"):
            raise Invalid("an entity value cannot hold line breaks or brackets")
        if entities is not None and m.entity not in entities:
            raise Invalid(f"unknown entity {m.entity!r} (the domain has: {', '.join(entities)})")
        out.append({"start": m.start, "end": m.end, "entity": m.entity, "value": value})
        last_end = m.end
    return out


async def label(
    db: Database, item_id: str, *, intent: str, reviewer_id: str, marks: Sequence[EntityMark] = (),
    text: str | None = None, whole_group: bool = True, entities: Sequence[str] | None = None,
) -> int:
    """Label the item (and, with `whole_group`, the open items of its kind) with `intent`;
    `marks` are the entities in `text` (the trainer's wording, e.g. with a real customer number
    replaced; default the message itself). Entity spans belong to one wording: items of the kind
    with another wording get the intent, and the export keeps only the marked wording. How many
    items were labelled."""
    if not INTENT_NAME.match(intent):
        raise Invalid("an intent name is lower case letters, digits and _ (starting with a letter)")
    async with db.session() as s:
        item = await s.get(ReviewItem, item_id, with_for_update=True)
        if item is None:
            raise NotFound("no such review item")
        if item.status == ReviewStatus.DISCARDED:
            raise Conflict("the item was discarded")
        wording = (text if text is not None else item.text).strip()
        if not wording or "\n" in wording:
            raise Invalid("the text must be one non-empty line")
        checked = _check_marks(wording, marks, entities)
        now = utcnow()
        item.text, item.status, item.label_intent, item.label_entities = wording, ReviewStatus.LABELLED, intent, checked
        item.reviewer_id, item.reviewed_at = reviewer_id, now
        n = 1
        if whole_group:
            result = await s.execute(
                update(ReviewItem).where(ReviewItem.group_key == item.group_key, ReviewItem.status == ReviewStatus.OPEN,
                                         ReviewItem.id != item.id)
                .values(status=ReviewStatus.LABELLED, label_intent=intent, label_entities=[],
                        reviewer_id=reviewer_id, reviewed_at=now))
            n += result.rowcount  # type: ignore[attr-defined]
        return n


async def discard(db: Database, item_id: str, *, reviewer_id: str, whole_group: bool = True) -> int:
    """Nothing to learn from it (noise, personal data, a one-off): out of the queue. How many."""
    async with db.session() as s:
        item = await s.get(ReviewItem, item_id)
        if item is None:
            raise NotFound("no such review item")
        where = ([ReviewItem.group_key == item.group_key, ReviewItem.status == ReviewStatus.OPEN] if whole_group
                 else [ReviewItem.id == item.id])
        result = await s.execute(update(ReviewItem).where(*where).values(
            status=ReviewStatus.DISCARDED, reviewer_id=reviewer_id, reviewed_at=utcnow()))
        return int(result.rowcount)  # type: ignore[attr-defined]


async def labelled(db: Database) -> list[tuple[str, str, list[dict[str, Any]], str]]:
    """The labelled examples: (intent, text, entity marks, group key), oldest first."""
    async with db.session() as s:
        rows = (await s.execute(
            select(ReviewItem.label_intent, ReviewItem.text, ReviewItem.label_entities, ReviewItem.group_key)
            .where(ReviewItem.status == ReviewStatus.LABELLED).order_by(ReviewItem.reviewed_at, ReviewItem.id))).all()
    return [(r[0], r[1], list(r[2] or []), r[3]) for r in rows if r[0]]
