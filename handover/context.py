"""What the agent sees: the handover context, built from the store when a handover opens."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.verification import VerifiedState, verified_state
from handover.sentiment import score, trend
from resonanz import texts
from resonanz.store.models import ChannelIdentity, Conversation, Customer, Handover, Message, utcnow
from resonanz.store.vocabulary import Direction

@dataclass(frozen=True)
class HandoverContext:
    reason: str
    trigger: str
    summary: str
    transcript: list[dict[str, Any]] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    sentiment: dict[str, Any] = field(default_factory=dict)
    # Step-up verification when the handover opened: {"status": "verified" | "not_verified",
    # "customer_number", "until" (ISO), "text"}. An unverified number is only what someone typed.
    verification: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(v: Any) -> str | None:
    return v.isoformat() if v is not None else None


def verification_text(language: str, verified: VerifiedState | None) -> str:
    if verified is None:
        return texts.text("verification.none", language)
    return texts.text("verification.until", language, until=verified.until.strftime("%H:%M UTC"),
                      number=verified.customer_number)


def verification_info(language: str, verified: VerifiedState | None) -> dict[str, Any]:
    return {
        "status": "verified" if verified is not None else "not_verified",
        "customer_number": verified.customer_number if verified is not None else None,
        "until": _iso(verified.until) if verified is not None else None,
        "text": verification_text(language, verified),
    }


def extract_summary(*, language: str, intents: list[str], quote: str | None, slots: dict[str, Any],
                    reason: str, active_loop: str | None, verified: VerifiedState | None = None) -> str:
    """Extractive: what the customer wants, what the bot did, what is open. The bot's
    configuration names its intents (`intent.<name>` texts) and the slots worth naming when no
    form is open (`slot.<name>`); intents and slots without such a text are left out."""
    wants = [texts.text(f"intent.{i}", language) for i in dict.fromkeys(reversed(intents))
             if texts.has(f"intent.{i}")][:2]
    parts = []
    if wants:
        parts.append(texts.text("summary.wants", language, items=", ".join(wants)))
    if quote:
        parts.append(texts.text("summary.quote", language, quote=quote))
    done = []
    if verified is not None:
        done.append(verification_text(language, verified))
    elif slots.get("customer_number"):
        # Typed, not proven: the agent must not take it for the caller's identity.
        done.append(texts.text("summary.number_unverified", language, number=slots["customer_number"]))
    if active_loop is None:
        done += [texts.text(f"slot.{name}", language, value=value) for name, value in slots.items()
                 if value and texts.has(f"slot.{name}")]
    if done:
        parts.append(texts.text("summary.did", language, items="; ".join(done)))
    open_items = [texts.text(f"reason.{reason}", language) if texts.has(f"reason.{reason}") else reason]
    if active_loop:
        open_items.append(texts.text("summary.unfinished_form", language, form=active_loop))
    parts.append(texts.text("summary.open", language, items="; ".join(open_items)))
    return " ".join(parts)


async def build_context(session: AsyncSession, conversation_id: str, *, reason: str, trigger: str) -> HandoverContext:
    conv = await session.get(Conversation, conversation_id)
    customer = await session.get(Customer, conv.customer_id)
    convs = (await session.scalars(select(Conversation).where(Conversation.customer_id == customer.id).order_by(Conversation.created_at))).all()
    messages = (await session.scalars(
        select(Message).where(Message.customer_id == customer.id).order_by(Message.created_at, Message.id)
    )).all()
    transcript, intents, own_texts, per_turn, matches = [], [], [], [], []
    last_slots: dict[str, Any] = {}
    for m in messages:
        parse = m.parse_data if m.direction == Direction.IN and m.parse_data and "error" not in m.parse_data else {}
        transcript.append({
            "id": m.public_id, "conversation_id": m.conversation_id, "channel": m.channel, "direction": m.direction,
            "author": m.author, "text": m.text, "timestamp": _iso(m.created_at),
            "intent": parse.get("intent"), "confidence": parse.get("confidence"),
            "entities": [{"entity": e.get("entity"), "value": e.get("value")} for e in parse.get("entities") or []],
        })
        if m.conversation_id == conversation_id and m.direction == Direction.IN:
            if parse.get("intent"):
                intents.append(parse["intent"])
            if parse.get("slots"):
                last_slots = parse["slots"]
            own_texts.append(m.text)
            s = score(m.text)
            per_turn.append(s.value)
            matches.extend(s.matches)
    slots = {k: v for k, v in {**last_slots, **(conv.slots or {})}.items() if v is not None and k != "requested_slot"}
    informative = [t for t in own_texts if len(t.split()) >= 3 and not t.startswith("/")]
    quote = max(informative, key=len)[:200] if informative else None
    handovers = (await session.scalars(select(Handover).where(Handover.customer_id == customer.id))).all()
    by_conv: dict[str, list[dict[str, Any]]] = {}
    for h in handovers:
        by_conv.setdefault(h.conversation_id, []).append({
            "id": h.id, "reason": h.reason, "status": h.status, "agent_id": h.agent_id,
            "resolution": h.resolution, "rating": h.rating, "closed_at": _iso(h.closed_at),
        })
    history = [
        {"conversation_id": c.id, "started_at": _iso(c.created_at), "state": c.state, "channel": c.channel,
         "handovers": by_conv.get(c.id, [])}
        for c in convs if c.id != conversation_id
    ]
    identities = (await session.execute(
        select(ChannelIdentity.channel, ChannelIdentity.opted_out).where(ChannelIdentity.customer_id == customer.id)
    )).all()
    channels = sorted({channel for channel, _ in identities})
    opted_out = sorted({channel for channel, out in identities if out})
    language = conv.language or customer.language or "de"
    verified = await verified_state(session, conversation_id, utcnow())
    return HandoverContext(
        reason=reason,
        trigger=trigger,
        summary=extract_summary(language=language, intents=intents, quote=quote, slots=slots, reason=reason, active_loop=conv.active_loop,
                                verified=verified),
        transcript=transcript,
        slots=slots,
        profile={"customer_id": customer.id, "name": customer.name or slots.get("customer_name"),
                 "customer_number": customer.customer_number or slots.get("customer_number"),
                 "language": language, "preference": customer.preference, "channels": channels,
                 "opted_out": opted_out},
        history=history,
        sentiment={"latest": per_turn[-1] if per_turn else 0.0,
                   "frustration": score(own_texts[-1]).frustration if own_texts else 0.0,
                   "trend": trend(per_turn), "per_turn": per_turn, "matches": list(dict.fromkeys(matches))},
        verification=verification_info(language, verified),
    )
