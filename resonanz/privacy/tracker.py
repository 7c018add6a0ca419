"""The engine's tracker store (Rasa's SQL tracker store, table `events`), read and cleaned from the
gateway: on PostgreSQL the gateway's own database (shared by all engines), on SQLite one file per
engine under `var/engine/` (bot/engine_process.py). Engine sender ids are `<conversation id>-<n>`
(bot/dispatcher.py `engine_sender`), so a conversation's events are those with that prefix."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing as contextlib_closing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text

from resonanz.store import Database

TABLE = "events"


def _prefixes(conversation_ids: Iterable[str]) -> list[str]:
    return sorted(f"{c}-%" for c in conversation_ids)


def _event(row: Any) -> dict[str, Any]:
    sender_id, type_name, timestamp, data = row
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = data
    return {"sender_id": sender_id, "type": type_name, "timestamp": timestamp, "data": parsed}


class TrackerStore:
    def __init__(self, db: Database, var_dir: Path) -> None:
        self.db = db
        self.var_dir = var_dir

    def files(self) -> list[Path]:
        return sorted((self.var_dir / "engine").glob("trackers*.db"))

    async def _has_table(self) -> bool:
        async with self.db.engine.connect() as conn:
            return await conn.run_sync(lambda c: inspect(c).has_table(TABLE))

    async def events(self, conversation_ids: Iterable[str]) -> list[dict[str, Any]]:
        prefixes = _prefixes(conversation_ids)
        if not prefixes:
            return []
        out: list[dict[str, Any]] = []
        if not self.db.is_sqlite:
            if await self._has_table():
                async with self.db.session() as s:
                    for p in prefixes:
                        rows = await s.execute(text(
                            f"SELECT sender_id, type_name, timestamp, data FROM {TABLE} "
                            "WHERE sender_id LIKE :p ORDER BY id"), {"p": p})
                        out += [_event(r) for r in rows]
            return out
        for path in self.files():
            out += await asyncio.to_thread(_sqlite_events, path, prefixes)
        return out

    async def erase(self, conversation_ids: Iterable[str]) -> int:
        prefixes = _prefixes(conversation_ids)
        if not prefixes:
            return 0
        deleted = 0
        if not self.db.is_sqlite:
            if await self._has_table():
                async with self.db.session() as s:
                    for p in prefixes:
                        result = await s.execute(text(f"DELETE FROM {TABLE} WHERE sender_id LIKE :p"), {"p": p})
                        deleted += result.rowcount or 0  # type: ignore[attr-defined]
            return deleted
        for path in self.files():
            deleted += await asyncio.to_thread(_sqlite_erase, path, prefixes)
        return deleted


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=30)


def _sqlite_has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (TABLE,)).fetchone() is not None


def _sqlite_events(path: Path, prefixes: list[str]) -> list[dict[str, Any]]:
    with contextlib_closing(_connect(path)) as conn:
        if not _sqlite_has_table(conn):
            return []
        out: list[dict[str, Any]] = []
        for p in prefixes:
            out += [_event(r) for r in conn.execute(
                f"SELECT sender_id, type_name, timestamp, data FROM {TABLE} WHERE sender_id LIKE ? ORDER BY id", (p,))]
        return out


def _sqlite_erase(path: Path, prefixes: list[str]) -> int:
    with contextlib_closing(_connect(path)) as conn:
        if not _sqlite_has_table(conn):
            return 0
        deleted = 0
        with conn:
            for p in prefixes:
                deleted += conn.execute(f"DELETE FROM {TABLE} WHERE sender_id LIKE ?", (p,)).rowcount
        return deleted

