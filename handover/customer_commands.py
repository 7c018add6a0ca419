"""What a customer does to their handover, inside the turn's transaction: cancel while waiting,
answer the satisfaction survey."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handover.service import restart_engine_session, transition
from handover.state import State
from resonanz.store.models import Conversation, Handover, utcnow
from resonanz.store.vocabulary import HandoverStatus

RATING_RE = re.compile(r"^\s*/?(?:rate\s*)?([1-5])\s*(?:sterne?|stars?|/\s*5)?\s*[.!]?\s*$", re.IGNORECASE)
# How long after the survey an answer still counts as a rating.
RATING_WINDOW = timedelta(days=1)
# The resolution of a handover the customer left with a message for a callback or an e-mail.
CALLBACK_REQUESTED = "callback_requested"


def parse_rating(text: str) -> int | None:
    m = RATING_RE.match(text)
    return int(m.group(1)) if m else None


async def cancel_in(s: AsyncSession, conv: Conversation) -> str | None:
    """The waiting customer goes back to the bot; returns the cancelled handover's id, if any."""
    h = await s.scalar(select(Handover).where(Handover.conversation_id == conv.id, Handover.status.in_(HandoverStatus.queued())))
    if h is None:
        return None
    h.status, h.closed_at, h.resolution, h.version = HandoverStatus.CANCELLED, utcnow(), "cancelled_by_customer", h.version + 1
    await transition(s, conv, State.BOT, reason="customer_cancelled", actor="customer", data={"handover": h.id})
    restart_engine_session(conv)
    return h.id


async def callback_in(s: AsyncSession, conv: Conversation, *, via: str, contact: str, message: str) -> str | None:
    """The waiting customer leaves a message for a callback (`via="phone"`) or an e-mail: the
    handover leaves the queue as "callback requested", keeping the contact and the message in its
    context for the agents (export and erasure cover handovers); the customer is back with the bot.
    Returns the handover's id, or None if nothing was waiting."""
    h = await s.scalar(select(Handover).where(Handover.conversation_id == conv.id, Handover.status.in_(HandoverStatus.queued())))
    if h is None:
        return None
    now = utcnow()
    callback = {"via": via, "contact": contact, "message": message, "at": now.isoformat()}
    h.context = {**(h.context or {}), "callback": callback}  # a new dict: the JSON column sees the change
    h.status, h.closed_at, h.resolution, h.version = HandoverStatus.CANCELLED, now, CALLBACK_REQUESTED, h.version + 1
    await transition(s, conv, State.BOT, reason="callback_requested", actor="customer", data={"handover": h.id, "via": via})
    restart_engine_session(conv)
    return h.id


async def rate_in(s: AsyncSession, conv: Conversation, rating: int) -> str | None:
    """Store a satisfaction answer on the conversation's last surveyed, unrated handover."""
    h = await s.scalar(
        select(Handover).where(Handover.conversation_id == conv.id, Handover.survey_sent_at.is_not(None), Handover.rating.is_(None))
        .order_by(Handover.closed_at.desc()).limit(1)
    )
    if h is None or h.survey_sent_at < utcnow() - RATING_WINDOW:
        return None
    h.rating, h.rated_at = rating, utcnow()
    return h.id


async def awaits_rating(s: AsyncSession, conversation_id: str) -> bool:
    h = await s.scalar(
        select(Handover.id).where(
            Handover.conversation_id == conversation_id, Handover.survey_sent_at > utcnow() - RATING_WINDOW,
            Handover.rating.is_(None),
        ).limit(1)
    )
    return h is not None
