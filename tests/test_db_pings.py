"""PostgreSQL pool connections are checked before use only after they sat idle (resonanz/store/db.py):
a connection the server dropped while idle (a restart, an idle timeout) is replaced without an
error, and a connection in constant use costs no extra round trip per session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from resonanz.store import Database
from resonanz.store import db as db_module
from tests.conftest import make_database_url


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[Database]:
    url, drop = await make_database_url("postgresql", tmp_path)
    db = Database(url)
    try:
        yield db
    finally:
        await db.dispose()
        await drop()


async def backend_pid(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(text("SELECT pg_backend_pid()")))


async def test_a_connection_dropped_while_idle_is_replaced_without_an_error(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)  # every checkout counts as after a pause
    pid = await backend_pid(pg)
    other = Database(pg.url)
    try:
        async with other.session() as s:  # the server ends the pooled connection (as a restart would)
            assert await s.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()
    assert await backend_pid(pg) != pid  # a new connection, and no error


async def test_a_connection_in_constant_use_is_not_pinged(pg: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    pings: list[object] = []
    original = pg.engine.dialect.do_ping
    monkeypatch.setattr(pg.engine.dialect, "do_ping", lambda conn: pings.append(conn) or original(conn))
    for _ in range(5):
        await backend_pid(pg)
    assert pings == []
