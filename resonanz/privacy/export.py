"""One customer's data as one JSON-ready document."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select

from resonanz.privacy.registry import sources
from resonanz.privacy.rows import row_dict
from resonanz.privacy.scope import customer_scope, find_customer, media_names
from resonanz.privacy.tracker import TrackerStore
from resonanz.store import Database
from resonanz.store.models import (
    ChannelIdentity,
    ContinueCode,
    Conversation,
    ConversationEvent,
    Customer,
    Handover,
    Message,
    ReviewItem,
    VerificationAttempt,
    WebChatSession,
)

FORMAT = "resonanz-customer-export/1"


def _t(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


async def export_customer(db: Database, ref: str, var_dir: Path) -> dict[str, Any] | None:
    """Everything stored about the customer `ref` (id or `channel:external id`), or None if unknown.
    Media files are included with their bytes (base64); ratings are part of the handovers."""
    async with db.session() as s:
        customer = await find_customer(s, ref)
        if customer is None:
            return None
        scope = await customer_scope(s, customer)
        convs = scope.conversation_ids

        async def rows(model: Any, *where: Any) -> list[dict[str, Any]]:
            t = _t(model)
            key = t.primary_key.columns.values()[0]
            return [row_dict(r) for r in (await s.execute(select(t).where(*where).order_by(key))).all()]

        identities = await rows(ChannelIdentity, ChannelIdentity.customer_id == customer.id)
        webchat_ids = [i["external_id"] for i in identities if i["channel"] == "webchat"]
        handovers = await rows(Handover, Handover.customer_id == customer.id)
        doc: dict[str, Any] = {
            "format": FORMAT,
            "exported_at": datetime.now(UTC).isoformat(),
            "customer": (await rows(Customer, Customer.id == customer.id))[0],
            "channel_identities": identities,
            "webchat_sessions": [{k: v for k, v in r.items() if k != "token_hash"}
                                 for r in await rows(WebChatSession, WebChatSession.id.in_(webchat_ids))],
            "conversations": await rows(Conversation, Conversation.customer_id == customer.id),
            "conversation_events": await rows(ConversationEvent, ConversationEvent.conversation_id.in_(convs)),
            "messages": await rows(Message, Message.conversation_id.in_(convs)),
            "handovers": handovers,
            # Their messages the bot missed, as trainers label them (resonanz.review).
            "review_items": await rows(ReviewItem, ReviewItem.conversation_id.in_(convs)
                                       | (ReviewItem.customer_id == customer.id)),
            "ratings": [{"handover_id": h["id"], "rating": h["rating"], "rated_at": h["rated_at"]}
                        for h in handovers if h["rating"] is not None],
            "verification_attempts": await rows(
                VerificationAttempt, VerificationAttempt.conversation_id.in_(convs)
                | VerificationAttempt.customer_number.in_(scope.customer_numbers)),
            # Continue codes (resonanz/continuity.py) without their hashes.
            "continue_codes": [{k: v for k, v in r.items() if k != "code_hash"} for r in await rows(
                ContinueCode, (ContinueCode.customer_id == customer.id) | ContinueCode.conversation_id.in_(convs))],
            "bot_data": {},
        }
        for source in sources():
            doc["bot_data"][source.name] = await source.export(s, scope)
        names = await media_names(s, convs)
    media_dir = var_dir / "media"
    doc["media"] = [{"name": n, "content_base64": base64.b64encode((media_dir / n).read_bytes()).decode()}
                    for n in sorted(names) if (media_dir / n).is_file()]
    doc["engine_events"] = await TrackerStore(db, var_dir).events(convs)
    return doc
