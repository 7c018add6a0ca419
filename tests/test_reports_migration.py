"""Migration b2e7c9d4f6a1 fills messages.intent and intent_confidence from the parse data of the
messages already stored (objects only: JSON null, SQL NULL and engine errors stay empty)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from resonanz.store import Database
from resonanz.store.migrate import upgrade
from tests.conftest import BACKENDS, make_database_url

pytestmark = pytest.mark.asyncio(loop_scope="session")
T = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_backfill_of_intents(backend: str, tmp_path: Path) -> None:
    url, drop = await make_database_url(backend, tmp_path)
    db = None
    try:
        await asyncio.to_thread(upgrade, url, "a9c4e7d2b1f3")
        db = Database(url)
        async with db.engine.begin() as c:
            await c.execute(text("INSERT INTO customers (id, created_at) VALUES ('c1', :t)"), {"t": T})
            await c.execute(text("INSERT INTO conversations (id, customer_id, channel, address, state, slots, engine_session, "
                                 "engine_turns, consecutive_fallbacks, fallback_count, version, created_at, updated_at) VALUES "
                                 "('v1', 'c1', 'web', '{}', 'bot', '{}', 0, 0, 0, 0, 0, :t, :t)"), {"t": T})
            for i, (direction, parse) in enumerate((("in", '{"intent": "greet", "confidence": 0.5}'), ("in", "null"),
                                                    ("in", None), ("in", '{"error": "timeout"}'),
                                                    ("out", '{"intent": "x", "confidence": 1}'))):
                await c.execute(text("INSERT INTO messages (public_id, conversation_id, customer_id, channel, direction, author, "
                                     "text, buttons, attachments, metadata, parse_data, status, attempts, created_at) VALUES "
                                     "(:p, 'v1', 'c1', 'web', :d, 'customer', '', '[]', '[]', '{}', :j, 'processed', 0, :t)"),
                                {"p": f"m{i}", "d": direction, "j": parse, "t": T})
        await db.dispose()
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        async with db.engine.connect() as c:
            rows = (await c.execute(text("SELECT public_id, intent, intent_confidence FROM messages ORDER BY public_id"))).all()
        assert [tuple(r) for r in rows] == [("m0", "greet", 0.5), ("m1", None, None), ("m2", None, None),
                                            ("m3", None, None), ("m4", None, None)]
    finally:
        if db is not None:
            await db.dispose()
        await drop()
