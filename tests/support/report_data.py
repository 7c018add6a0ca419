"""A small history whose report figures are known (worked out by hand in EXPECTED), for the
report tests (API, CSV, browser). The day is Monday 2 March 2026 (UTC); Berlin is UTC+1 then, so
the queue "billing-de" (Mon-Fri 08:00-18:00 Europe/Berlin) is open 07:00-17:00 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bot.reference.models import Account, InstalmentChange, MeterReading, OutageLookup
from sqlalchemy import delete

from resonanz.store import Database
from resonanz.store.models import Agent, Conversation, Customer, Handover, Message, Queue

DAY = "2026-03-02"
HOURS = {"timezone": "Europe/Berlin", "days": {d: [["08:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}


def at(hhmmss: str, day: str = DAY) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmmss}").replace(tzinfo=UTC)


def parse(intent: str, confidence: float, loop: str | None = None, slot: str | None = None) -> dict[str, Any]:
    slots = {"requested_slot": slot} if slot else {}
    return {"intent": intent, "confidence": confidence, "entities": [], "intent_ranking": [], "slots": slots, "active_loop": loop}


async def seed(db: Database) -> dict[str, str]:
    """Insert the history; the ids of its queues by name."""
    async with db.session() as s:
        await s.execute(delete(Queue))  # the default queues the gateway made at its start: not in the figures
        billing = Queue(name="billing-de", skill="billing", language="de", business_hours=HOURS)
        general = Queue(name="general-en", skill="general", language="en", business_hours={})
        anna = Agent(email="anna@example.org", display_name="Anna", password_hash="x", role="agent")
        ben = Agent(email="ben@example.org", display_name="Ben <b>", password_hash="x", role="agent")
        s.add_all([billing, general, anna, ben])
        s.add(Account(customer_number="4711", name="A", postcode="10115", meter_number="M1", last_reading=1,
                      last_reading_at=at("00:00:00"), yearly_consumption=3000, monthly_instalment=50,
                      instalment_min=20, instalment_max=200))
        await s.flush()
        convs: dict[str, Conversation] = {}
        for key, channel, lang, created in (("c1", "web", "de", at("08:00:00")), ("c2", "telegram", "en", at("12:00:00")),
                                            ("c3", "web", "de", at("08:59:00")), ("c4", "web", "en", at("09:59:00")),
                                            ("c5", "telegram", "de", at("19:59:00")),
                                            ("c6", "web", "de", at("10:00:00", "2026-02-20"))):
            cust = Customer(language=lang)
            s.add(cust)
            await s.flush()
            conv = Conversation(customer_id=cust.id, channel=channel, address={}, language=lang, created_at=created,
                                active_loop="meter_reading_form" if key == "c2" else None)
            s.add(conv)
            await s.flush()
            convs[key] = conv

        def msg(key: str, when: datetime, direction: str, author: str, parse_data: dict[str, Any] | None = None,
                text: str = "") -> None:
            c = convs[key]
            s.add(Message(conversation_id=c.id, customer_id=c.customer_id, channel=c.channel, direction=direction,
                          author=author, text=text, status="processed" if direction == "in" else "sent",
                          parse_data=parse_data, created_at=when,
                          intent=(parse_data or {}).get("intent"), intent_confidence=(parse_data or {}).get("confidence")))

        msg("c1", at("08:00:00"), "in", "customer", parse("greet", 0.9))
        msg("c1", at("08:00:05"), "out", "bot")
        msg("c1", at("08:01:00"), "in", "customer", parse("meter_reading", 0.8))
        msg("c1", at("08:01:05"), "out", "bot")
        msg("c2", at("12:00:00"), "in", "customer", parse("nlu_fallback", 0.3))
        msg("c2", at("12:00:05"), "out", "bot")
        msg("c2", at("12:01:00"), "in", "customer", parse("inform", 0.35, "meter_reading_form", "meter_reading"))
        msg("c3", at("08:59:00"), "in", "customer", parse("human", 0.95))
        msg("c3", at("09:02:00"), "out", "agent", text="<img src=x onerror=alert(1)>")
        msg("c3", at("09:05:00"), "in", "customer")
        msg("c3", at("09:10:00"), "out", "agent")
        msg("c4", at("09:59:00"), "in", "customer", parse("nlu_fallback", 0.2))
        msg("c4", at("10:05:00"), "out", "agent")
        msg("c4", at("10:10:00"), "in", "customer")
        msg("c5", at("19:59:00"), "in", "customer", parse("greet", 0.9))
        msg("c6", at("10:00:00", "2026-02-20"), "in", "customer", parse("greet", 0.9))

        def handover(key: str, queue: Queue, reason: str, trigger: str, status: str, created: datetime, **kw: Any) -> None:
            c = convs[key]
            s.add(Handover(conversation_id=c.id, customer_id=c.customer_id, queue_id=queue.id, reason=reason,
                           trigger=trigger, status=status, created_at=created, **kw))

        handover("c3", billing, "customer_request", "intent:human", "closed", at("09:00:00"), agent_id=anna.id,
                 accepted_at=at("09:01:00"), closed_at=at("09:12:00"), rating=5)
        handover("c4", general, "bot_stuck", "fallbacks:3", "closed", at("10:00:00"), agent_id=ben.id,
                 accepted_at=at("10:04:00"), closed_at=at("10:24:00"), rating=2, declined_by=["someone"])
        handover("c5", billing, "customer_request", "pattern", "abandoned", at("20:00:00"), closed_at=at("20:30:00"))
        handover("c6", billing, "customer_request", "pattern", "closed", at("10:01:00", "2026-02-20"), agent_id=anna.id,
                 accepted_at=at("10:02:00", "2026-02-20"), closed_at=at("10:03:00", "2026-02-20"), rating=1)
        s.add(MeterReading(customer_number="4711", value=1234, conversation_id=convs["c1"].id, submitted_at=at("08:02:00")))
        s.add(InstalmentChange(customer_number="4711", old_amount=50, new_amount=60, conversation_id=convs["c6"].id,
                               changed_at=at("10:05:00", "2026-02-20")))
        # Outage lookups, whatever they found: one on DAY, one out of range.
        s.add(OutageLookup(postcode="10115", outcome="none", conversation_id=convs["c2"].id, looked_up_at=at("12:02:00")))
        s.add(OutageLookup(postcode="10115", outcome="known", conversation_id=convs["c6"].id,
                           looked_up_at=at("10:04:00", "2026-02-20")))
        return {"billing-de": billing.id, "general-en": general.id}


# The figures for DAY alone (from=to=DAY), no filters: report -> table -> rows.
EXPECTED: dict[str, dict[str, list[list[Any]]]] = {
    "containment": {"containment": [
        ["telegram", "de", 1, 1, 0, 0.0], ["telegram", "en", 1, 0, 1, 1.0],
        ["web", "de", 2, 1, 1, 0.5], ["web", "en", 1, 1, 0, 0.0], ["(all)", "(all)", 5, 3, 2, 0.4],
    ]},
    "handovers": {
        "by_reason": [["bot_stuck", "fallbacks", 1], ["customer_request", "intent", 1], ["customer_request", "pattern", 1]],
        "by_queue": [["billing-de", "telegram", 1], ["billing-de", "web", 1], ["general-en", "web", 1]],
    },
    "waiting": {
        "waiting": [
            ["billing-de", 2, 1, 120.0, 120.0, 660.0, 660.0, 660.0, 1, 0],
            ["general-en", 1, 1, 300.0, 300.0, 1200.0, 1200.0, 1200.0, 0, 1],
            ["(all)", 3, 2, 120.0, 300.0, 930.0, 660.0, 1200.0, 1, 1],
        ],
    },
    "business_hours": {
        "business_hours": [["billing-de", "in", 8, 1], ["billing-de", "out", 6, 0],
                           ["general-en", "in", 9, 0], ["general-en", "out", 6, 0]],
    },
    "csat": {
        "distribution": [[1, 0, 0.0], [2, 1, 0.5], [3, 0, 0.0], [4, 0, 0.0], [5, 1, 0.5]],
        "by_agent": [["Anna", 1, 5.0], ["Ben <b>", 1, 2.0]],
        "by_queue": [["billing-de", 1, 5.0], ["general-en", 1, 2.0]],
        "by_reason": [["bot_stuck", 1, 2.0], ["customer_request", 1, 5.0]],
    },
    "self_service": {
        "tasks": [["instalment_change", "Instalment changes", 0], ["meter_reading", "Meter readings", 1],
                  ["outage_lookup", "Outage lookups", 1], ["outage_report", "Outages reported", 0]],
        "form_dropouts": [["meter_reading_form", "meter_reading", 1]],
    },
    "intents": {
        "top_intents": [["greet", 2, 0.2857], ["nlu_fallback", 2, 0.2857], ["human", 1, 0.1429],
                        ["inform", 1, 0.1429], ["meter_reading", 1, 0.1429]],
        "not_understood": [[DAY, 7, 3, 0.4286]],
    },
}
