"""Delete everything stored about one customer."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from resonanz.privacy.registry import sources
from resonanz.privacy.scope import customer_scope, find_customer, media_names
from resonanz.privacy.tracker import TrackerStore
from resonanz.store import Database
from resonanz.store.models import (
    ChannelIdentity,
    ContinueCode,
    Conversation,
    ConversationEvent,
    Customer,
    DataAccess,
    Handover,
    Message,
    ReviewItem,
    VerificationAttempt,
    WebChatSession,
)


async def erase_customer(db: Database, ref: str, var_dir: Path) -> dict[str, int] | None:
    """Erase the customer `ref` (id or `channel:external id`): their rows in every table, the bot's
    rows (registered sources), their media files and the engine's tracker events. The number
    deleted per table (or store), or None if the customer is unknown."""
    async with db.session() as s:
        customer = await find_customer(s, ref)
        if customer is None:
            return None
        scope = await customer_scope(s, customer)
        convs = scope.conversation_ids
        names = await media_names(s, convs)
    counts: dict[str, int] = {}
    # The engine's events first: if this fails, the customer is still found and the erasure can
    # be repeated.
    counts["engine_events"] = await TrackerStore(db, var_dir).erase(convs)
    async with db.session() as s:
        for source in sources():
            for table, n in (await source.erase(s, scope)).items():
                counts[table] = counts.get(table, 0) + n
        identities = (await s.execute(delete(ChannelIdentity).where(ChannelIdentity.customer_id == customer.id)
                                      .returning(ChannelIdentity.channel, ChannelIdentity.external_id))).all()
        counts["channel_identities"] = len(identities)
        webchat = [external_id for channel, external_id in identities if channel == "webchat"]
        statements = [
            ("webchat_sessions", delete(WebChatSession).where(WebChatSession.id.in_(webchat))),
            ("verification_attempts", delete(VerificationAttempt).where(
                VerificationAttempt.conversation_id.in_(convs)
                | VerificationAttempt.customer_number.in_(scope.customer_numbers))),
            ("review_items", delete(ReviewItem).where(ReviewItem.conversation_id.in_(convs)
                                                      | (ReviewItem.customer_id == customer.id))),
            ("continue_codes", delete(ContinueCode).where(
                (ContinueCode.customer_id == customer.id) | ContinueCode.conversation_id.in_(convs))),
            ("messages", delete(Message).where(Message.conversation_id.in_(convs) | (Message.customer_id == customer.id))),
            ("conversation_events", delete(ConversationEvent).where(ConversationEvent.conversation_id.in_(convs))),
            ("handovers", delete(Handover).where(Handover.conversation_id.in_(convs) | (Handover.customer_id == customer.id))),
            ("conversations", delete(Conversation).where(Conversation.customer_id == customer.id)),
            # Who opened this customer's data goes with it; the erasure itself is recorded by the
            # caller without a customer id.
            ("data_access_log", delete(DataAccess).where(DataAccess.customer_id == customer.id)),
            ("customers", delete(Customer).where(Customer.id == customer.id)),
        ]
        for table, stmt in statements:
            counts[table] = (await s.execute(stmt)).rowcount  # type: ignore[attr-defined]
    media_dir = var_dir / "media"
    counts["media_files"] = 0
    for name in names:
        path = media_dir / name
        if path.is_file():
            path.unlink()
            counts["media_files"] += 1
    return counts
