"""A customer's data on request: export is complete, erasure leaves nothing of them in any table,
the engine's tracker store or the media folder, and another customer's data stays."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import MetaData, select, text

import bot.reference.customer_data  # noqa: F401  (registers the reference bot's tables)
from bot.reference.models import Account, InstalmentChange, MeterReading, Outage, OutageLookup
from resonanz.privacy import erase_customer, export_customer
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
from tests.support.tracker_store import EVENTS_DDL

NOW = datetime(2026, 11, 1, tzinfo=UTC)


async def _seed(db: Database, tag: str, var_dir: Path) -> None:
    """One customer whose every value carries `tag` (alpha / bravo): identities on two channels, a
    web chat session, two conversations with events, messages (one with a picture), a rated
    handover, verification attempts, a labelled review item and the reference bot's rows."""
    number = f"{tag.upper()}-1001"
    media = var_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    (media / f"in-{tag}file.png").write_bytes(b"\x89PNG " + tag.encode())
    async with db.session() as s:
        s.add(Customer(id=f"{tag}cust", name=f"{tag} person", customer_number=number, language="de"))
        await s.flush()
        s.add_all([
            ChannelIdentity(customer_id=f"{tag}cust", channel="webchat", external_id=f"{tag}web",
                            address={"channel": "webchat", "recipient": f"{tag}web"}),
            ChannelIdentity(customer_id=f"{tag}cust", channel="telegram", external_id=f"{tag}tg",
                            address={"channel": "telegram", "recipient": f"{tag}tg"}),
            WebChatSession(id=f"{tag}web", token_hash=f"{tag}hash"),
            Account(customer_number=number, name=f"{tag} person", postcode="10115", meter_number=f"{tag}meter",
                    last_reading=100, last_reading_at=NOW, yearly_consumption=3000, monthly_instalment=80,
                    instalment_min=40, instalment_max=160),
        ])
        await s.flush()
        for n in (1, 2):
            conv = f"{tag}conv{n}"
            s.add(Conversation(id=conv, customer_id=f"{tag}cust", channel="telegram", state="closed",
                               address={"channel": "telegram", "recipient": f"{tag}tg"},
                               slots={"customer_number": number}))
            await s.flush()
            s.add_all([
                ConversationEvent(conversation_id=conv, from_state="bot", to_state="queued", reason="customer_request",
                                  actor="bot", data={"note": tag}),
                Message(conversation_id=conv, customer_id=f"{tag}cust", channel="telegram", sender_id=f"{tag}tg",
                        provider_message_id=f"{tag}msg{n}", direction="in", author="customer",
                        text=f"hello from {tag}", status="processed",
                        attachments=[{"kind": "image", "url": f"/media/in-{tag}file.png", "name": "p.png"}] if n == 1 else []),
                Message(conversation_id=conv, customer_id=f"{tag}cust", channel="telegram", direction="out",
                        author="bot", text=f"hi {tag}", status="sent"),
                VerificationAttempt(conversation_id=conv, customer_number=number, outcome="verified"),
                MeterReading(customer_number=number, value=100 + n, conversation_id=conv),
                InstalmentChange(customer_number=number, old_amount=80, new_amount=90, conversation_id=conv),
                Outage(postcode="10115", kind="power", status="reported", description_de="Vom Kunden gemeldeter Stromausfall (Chat).",
                       description_en="Power outage reported by a customer (chat).", reported_by_conversation=conv),
                OutageLookup(postcode="10115", outcome="none", conversation_id=conv),
            ])
        s.add(Handover(id=f"{tag}handover", conversation_id=f"{tag}conv1", customer_id=f"{tag}cust",
                       reason="customer_request", trigger="pattern", status="closed", summary=f"{tag} summary",
                       rating=4, rated_at=NOW))
        s.add(ReviewItem(conversation_id=f"{tag}conv1", customer_id=f"{tag}cust", text=f"blorf from {tag}",
                         group_key=f"blorf from {tag}", reason="fallback", status="labelled", label_intent="greet",
                         label_entities=[]))
        s.add(DataAccess(actor_id="someagent", actor_role="agent", action="view_handover", customer_id=f"{tag}cust",
                         subject=f"{tag}handover"))
        s.add(ContinueCode(code_hash=f"{tag}codehash", conversation_id=f"{tag}conv1", customer_id=f"{tag}cust",
                           expires_at=NOW, used_at=NOW, used_by=f"telegram:{tag}tg"))
    events = [(f"{tag}conv{n}-{session}", "user", json.dumps({"text": f"hello from {tag}"}))
              for n in (1, 2) for session in (0, 1)]
    if db.is_sqlite:
        path = var_dir / "engine" / "trackers.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as conn:
            conn.execute(EVENTS_DDL.format(pk="INTEGER PRIMARY KEY"))
            conn.executemany("INSERT INTO events (sender_id, type_name, timestamp, data) VALUES (?, ?, 1.0, ?)", events)
        conn.close()
    else:
        async with db.session() as s:
            await s.execute(text(EVENTS_DDL.format(pk="SERIAL PRIMARY KEY")))
            for sender, type_name, data in events:
                await s.execute(text("INSERT INTO events (sender_id, type_name, timestamp, data) "
                                     "VALUES (:s, :t, 1.0, :d)"), {"s": sender, "t": type_name, "d": data})


async def _all_rows(db: Database, var_dir: Path) -> dict[str, list[str]]:
    """Every row of every table in the database (reflected, so nothing is left out), and of the
    SQLite tracker stores, as text."""
    async with db.engine.connect() as conn:
        meta = MetaData()
        await conn.run_sync(meta.reflect)
        out = {name: [repr(tuple(r)) for r in (await conn.execute(select(t))).all()] for name, t in meta.tables.items()}
    for path in (var_dir / "engine").glob("trackers*.db"):
        with sqlite3.connect(path) as c:
            out[f"{path.name}:events"] = [repr(r) for r in c.execute("SELECT * FROM events")]
        c.close()
    return out


async def test_export_holds_all_of_one_customer_and_nothing_of_another(database: Database, tmp_path: Path) -> None:
    for tag in ("alpha", "bravo"):
        await _seed(database, tag, tmp_path)
    doc = await export_customer(database, "telegram:alphatg", tmp_path)
    assert doc is not None
    assert "bravo" not in json.dumps(doc)
    assert doc["customer"]["id"] == "alphacust" and doc["customer"]["name"] == "alpha person"
    assert {i["channel"] for i in doc["channel_identities"]} == {"webchat", "telegram"}
    assert [w["id"] for w in doc["webchat_sessions"]] == ["alphaweb"] and "token_hash" not in doc["webchat_sessions"][0]
    assert {c["id"] for c in doc["conversations"]} == {"alphaconv1", "alphaconv2"}
    assert len(doc["conversation_events"]) == 2 and len(doc["messages"]) == 4
    assert [h["id"] for h in doc["handovers"]] == ["alphahandover"]
    assert [(r["text"], r["label_intent"]) for r in doc["review_items"]] == [("blorf from alpha", "greet")]
    assert doc["ratings"] == [{"handover_id": "alphahandover", "rating": 4, "rated_at": NOW.isoformat()}]
    assert len(doc["verification_attempts"]) == 2
    assert [c["used_by"] for c in doc["continue_codes"]] == ["telegram:alphatg"]
    assert "code_hash" not in doc["continue_codes"][0]
    bot = doc["bot_data"]["reference_bot"]
    assert [a["customer_number"] for a in bot["accounts"]] == ["ALPHA-1001"]
    assert sorted(r["value"] for r in bot["meter_readings"]) == [101, 102]
    assert len(bot["instalment_changes"]) == 2 and len(bot["outages_reported"]) == 2
    assert [(r["postcode"], r["outcome"]) for r in bot["outage_lookups"]] == [("10115", "none")] * 2
    assert [(m["name"], base64.b64decode(m["content_base64"])) for m in doc["media"]] == [
        ("in-alphafile.png", b"\x89PNG alpha")]
    assert sorted(e["sender_id"] for e in doc["engine_events"]) == [
        "alphaconv1-0", "alphaconv1-1", "alphaconv2-0", "alphaconv2-1"]
    assert doc["engine_events"][0]["data"] == {"text": "hello from alpha"}
    # By customer id the same customer; an unknown one is None.
    again = await export_customer(database, "alphacust", tmp_path)
    assert again is not None and again["messages"] == doc["messages"]
    assert await export_customer(database, "telegram:nobody", tmp_path) is None


async def test_erasure_leaves_nothing_of_the_customer_in_any_table_store_or_folder(
        database: Database, tmp_path: Path) -> None:
    for tag in ("alpha", "bravo"):
        await _seed(database, tag, tmp_path)
    before = await _all_rows(database, tmp_path)
    seeded = {t for t, rows in before.items() if any("bravo" in r.lower() for r in rows)}
    assert {"customers", "messages", "review_items", "continue_codes", "accounts", "data_access_log", "meter_readings", "outage_lookups", "events" if not database.is_sqlite
            else "trackers.db:events"} <= seeded

    counts = await erase_customer(database, "webchat:alphaweb", tmp_path)

    assert counts is not None and counts["engine_events"] == 4 and counts["media_files"] == 1
    after = await _all_rows(database, tmp_path)
    left = {t: [r for r in rows if "alpha" in r.lower()] for t, rows in after.items()}
    assert {t: rows for t, rows in left.items() if rows} == {}
    # The other customer is untouched: every row of theirs is still there.
    for table in seeded:
        assert [r for r in after[table] if "bravo" in r.lower()] == [r for r in before[table] if "bravo" in r.lower()], table
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == ["in-bravofile.png"]
    assert await erase_customer(database, "alphacust", tmp_path) is None
