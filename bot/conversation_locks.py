"""Per-conversation order of turns, within one process and across gateway processes.

Within a process, an asyncio lock per conversation (FIFO: turns run in the order they asked).
On PostgreSQL, the holder of that lock then takes a session-level advisory lock keyed by the
conversation (`pg_advisory_lock`), so a turn on another gateway process or host waits for it too.

Why a session lock on its own connection, and not `pg_advisory_xact_lock`: the lock must span the
engine call, which runs between the turn's two transactions on purpose (it can take seconds). An
transaction-level lock would keep a transaction open for the whole turn ("idle in transaction":
it holds back vacuum and trips `idle_in_transaction_session_timeout`). The session lock lives on
a connection in autocommit mode — no transaction at all — taken from a small pool of its own, so
lock holders never starve the turns' own transactions of connections (which would deadlock). It is
released on the same connection; when that fails, or the wait was cancelled half way, the
connection is closed instead of going back to the pool, and closing a session releases its locks.
No ping before each use (a round trip per turn): a connection that died with the server fails
the lock query, is discarded, and the turn is retried on a fresh one. A process that dies loses
its connections, and PostgreSQL frees its locks at once: no expiry to tune (a Redis lock needs one, and a turn that outlives it silently loses the mutual exclusion).

SQLite has one writing process: the in-process lock is all there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import weakref
from collections.abc import AsyncIterator

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from resonanz.store import Database

log = structlog.get_logger(__name__)


def advisory_key(conversation_id: str) -> int:
    """A stable signed 64-bit key for `pg_advisory_lock` (the same in every process and release;
    Python's `hash()` is salted per process). Prefixed, so other users of advisory locks in the
    same database do not collide with ours by accident."""
    digest = hashlib.blake2b(b"resonanz:conversation:" + conversation_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_LOCK = text("SELECT pg_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")


class ConversationLocks:
    """`async with locks.hold(conversation_id):` — one turn of a conversation at a time."""

    def __init__(self, db: Database, *, connections: int = 20, wait_seconds: float = 300.0) -> None:
        self._local: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._engine: AsyncEngine | None = None
        if not db.is_sqlite:
            # One connection per conversation whose turn runs or waits in this process.
            self._engine = create_async_engine(
                db.url, isolation_level="AUTOCOMMIT", pool_size=min(5, connections),
                max_overflow=max(0, connections - 5), pool_timeout=wait_seconds,
            )

    @contextlib.asynccontextmanager
    async def hold(self, conversation_id: str) -> AsyncIterator[AsyncConnection | None]:
        """Yields the lock's connection (PostgreSQL; autocommit, for reads that need no
        transaction of their own), or None."""
        lock = self._local.get(conversation_id)
        if lock is None:
            lock = self._local[conversation_id] = asyncio.Lock()
        async with lock:
            if self._engine is None:
                yield None
                return
            async with self._advisory(self._engine, advisory_key(conversation_id)) as conn:
                yield conn

    @staticmethod
    @contextlib.asynccontextmanager
    async def _advisory(engine: AsyncEngine, key: int) -> AsyncIterator[AsyncConnection]:
        conn = await engine.connect()
        try:
            await conn.execute(_LOCK, {"key": key})
        except BaseException:
            # Cancelled or failed while waiting: the session may hold the lock or get it any moment.
            await _discard(conn)
            raise
        try:
            yield conn
        finally:
            try:
                released = await conn.scalar(_UNLOCK, {"key": key})
            except BaseException:
                await _discard(conn)
                raise
            if not released:  # cannot happen unless the session was replaced under us
                log.warning("conversation_lock.not_held", key=key)
                await _discard(conn)
            else:
                await conn.close()

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()


async def _discard(conn: AsyncConnection) -> None:
    """Close the connection's session for good (releasing every lock it holds), never pooling it."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()
