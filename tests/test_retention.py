"""Retention deletes exactly the conversations that are due, with their messages, media and
tracker events, and nothing else."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text

from resonanz.privacy.retention import purge_expired
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, ConversationEvent, Customer, Handover, Message, ReviewItem
from tests.support.tracker_store import EVENTS_DDL

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
OLD, RECENT = NOW - timedelta(days=400), NOW - timedelta(days=10)
# name: (state, updated_at, closed_at, due)
CASES = {
    "oldclosed": ("closed", OLD, OLD, True),
    "oldbot": ("bot", OLD, None, True),
    "oldqueued": ("queued", OLD, None, False),  # waiting for a person: never
    "oldagent": ("agent", OLD, None, False),
    "recentclosed": ("closed", RECENT, RECENT, False),
    "lateclose": ("closed", OLD, RECENT, False),  # closed recently
    "edge": ("closed", NOW - timedelta(days=364), NOW - timedelta(days=364), False),
}


def conv_id(name: str) -> str:
    return f"{name:x<32}"[:32]


async def _seed(db: Database, var_dir: Path) -> None:
    media = var_dir / "media"
    media.mkdir(parents=True)
    async with db.session() as s:
        s.add(Customer(id="retentioncustomer", name="Rita"))
        await s.flush()
        s.add(ChannelIdentity(customer_id="retentioncustomer", channel="rest", external_id="rita", address={}))
        for name, (state, updated, closed, _) in CASES.items():
            cid = conv_id(name)
            (media / f"in-{name}.png").write_bytes(b"x")
            s.add(Conversation(id=cid, customer_id="retentioncustomer", channel="rest", address={}, state=state,
                               created_at=OLD, updated_at=updated, closed_at=closed))
            await s.flush()
            s.add_all([
                Message(conversation_id=cid, customer_id="retentioncustomer", channel="rest", direction="in",
                        author="customer", text=name, status="processed", created_at=updated,
                        attachments=[{"kind": "image", "url": f"/media/in-{name}.png"}]),
                ConversationEvent(conversation_id=cid, from_state="bot", to_state=state, reason="x", actor="bot"),
                Handover(conversation_id=cid, customer_id="retentioncustomer", reason="x", trigger="x", status="closed"),
                ReviewItem(conversation_id=cid, customer_id="retentioncustomer", text=name, group_key=name,
                           reason="fallback", status="open", label_entities=[]),
            ])
    events = [(f"{conv_id(n)}-0", "user", json.dumps({"text": n})) for n in CASES]
    if db.is_sqlite:
        (var_dir / "engine").mkdir()
        with sqlite3.connect(var_dir / "engine" / "trackers.db") as conn:
            conn.execute(EVENTS_DDL.format(pk="INTEGER PRIMARY KEY"))
            conn.executemany("INSERT INTO events (sender_id, type_name, timestamp, data) VALUES (?, ?, 1.0, ?)", events)
        conn.close()
    else:
        async with db.session() as s:
            await s.execute(text(EVENTS_DDL.format(pk="SERIAL PRIMARY KEY")))
            for sender, t, d in events:
                await s.execute(text("INSERT INTO events (sender_id, type_name, timestamp, data) VALUES (:s, :t, 1.0, :d)"),
                                {"s": sender, "t": t, "d": d})


async def _tracker_senders(db: Database, var_dir: Path) -> set[str]:
    if db.is_sqlite:
        with sqlite3.connect(var_dir / "engine" / "trackers.db") as conn:
            senders = {r[0] for r in conn.execute("SELECT sender_id FROM events")}
        conn.close()
        return senders
    async with db.session() as s:
        return set((await s.scalars(text("SELECT sender_id FROM events"))).all())


async def test_retention_deletes_exactly_what_is_due(database: Database, tmp_path: Path) -> None:
    await _seed(database, tmp_path)
    kept = {n for n, case in CASES.items() if not case[3]}

    counts = await purge_expired(database, tmp_path, 365, now=NOW)

    assert counts["conversations"] == 2 and counts["messages"] == 2 and counts["media_files"] == 2
    assert counts["engine_events"] == 2 and counts["handovers"] == 2 and counts["conversation_events"] == 2
    assert counts["review_items"] == 2
    async with database.session() as s:
        assert set(await s.scalars(select(Message.text))) == kept
        assert set(await s.scalars(select(Conversation.id))) == {conv_id(n) for n in kept}
        assert set(await s.scalars(select(Handover.conversation_id))) == {conv_id(n) for n in kept}
        assert set(await s.scalars(select(ReviewItem.text))) == kept
        assert set(await s.scalars(select(ConversationEvent.conversation_id))) == {conv_id(n) for n in kept}
        # The customer stays known.
        assert await s.get(Customer, "retentioncustomer") is not None
    assert {p.name for p in (tmp_path / "media").iterdir()} == {f"in-{n}.png" for n in kept}
    assert await _tracker_senders(database, tmp_path) == {f"{conv_id(n)}-0" for n in kept}
    # Nothing more is due; a period of 0 keeps everything.
    assert await purge_expired(database, tmp_path, 365, now=NOW) == {}
    assert await purge_expired(database, tmp_path, 0, now=NOW + timedelta(days=3650)) == {}
