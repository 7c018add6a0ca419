"""The database handle: one async engine and a session factory, for SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from sqlalchemy import event, exc, text
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from resonanz.store import sqlite_driver

log = structlog.get_logger(__name__)


# A pooled PostgreSQL connection is checked (one round trip) before use only when it sat idle at
# least this long: one the server dropped meanwhile (a restart, an idle timeout) is then replaced
# without an error, while connections in constant use cost no extra round trip per session (the
# pool's pre-ping did one on every checkout: about 5 % of the gateway's CPU under load).
IDLE_PING_SECONDS = 2.0


def async_url(url: str) -> str:
    """Accept the usual `postgresql://` / `sqlite:///` URLs and pick the async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


# PostgreSQL: background sessions (turns, the outbox, agents' requests, sweeps) running at once
# in one process. Each running session keeps its round trips' callbacks in the event loop and a
# database backend busy; with every turn's at once, an acknowledgement queued behind all of them
# (bench/pipeline.py --postgres, closed loop, 2 cores: ack p99 31-47 ms unlimited, 7-11 ms at 1-2,
# 16-18 ms at 3-4; at 8 customers per channel turns no slower and the rate no lower, at 16, where
# the gateway's core is saturated, 15 % fewer turns per second). Turns spend their time in the
# engine, outside any session, so a few places suffice.
BACKGROUND_SESSIONS = 2
# PostgreSQL: connections the pool keeps open, and at most that many sessions at once. Beyond
# them a session would open a new connection (25-40 ms here, closed again after use); waiting a
# round trip or two for one of these is quicker. Other users of the pool (readiness pings) may
# still go beyond, up to `max_overflow`.
POOL_SIZE = 10


class Database:
    def __init__(self, url: str, *, echo: bool = False, background_sessions: int = BACKGROUND_SESSIONS) -> None:
        self.url = async_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            # SQLite has one writer. Several pooled connections fight for its lock with sleeping
            # busy-waits (tens to hundreds of milliseconds at the tail, measured with
            # bench/handover.py); one connection queues transactions in the event loop instead.
            # So code must never open a session while it holds another: it would wait for itself.
            kwargs.update(connect_args={"timeout": 30}, poolclass=AsyncAdaptedQueuePool, pool_size=1,
                          max_overflow=0, pool_timeout=60, module=sqlite_driver.dbapi())
        else:
            kwargs.update(pool_size=POOL_SIZE, max_overflow=20)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            _ping_after_idle(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # The same pool, with each statement committing by itself (`statements`).
        self._autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # `urgent` sessions (storing what a webhook acknowledges) go before background work:
        # SQLite's one connection is taken in turn, urgent sessions first; on PostgreSQL
        # background sessions wait while an urgent one runs, and only `background_sessions` of
        # them run at once (0: no limit; Settings.db_background_sessions).
        self._gate = (PriorityGate(1) if self.is_sqlite
                      else PriorityGate(POOL_SIZE, background=background_sessions or None))

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @asynccontextmanager
    async def session(self, *, urgent: bool = False) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on error. `urgent`:
        someone waits for this transaction to answer a request (an acknowledgement); on SQLite it
        goes before the sessions of background work that are waiting for the connection."""
        await self._gate.acquire(urgent)
        try:
            async with self.sessionmaker() as session, session.begin():
                yield session
        finally:
            self._gate.release(urgent)

    @asynccontextmanager
    async def statements(self, *, urgent: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection on which each statement commits by itself: on PostgreSQL no BEGIN and
        COMMIT, two round trips fewer. For work that is one write, or reads and writes that need
        no common snapshot (under READ COMMITTED a transaction gives them none either). On SQLite
        (no round trips to save) one transaction, so that several writes stay atomic. `urgent` as
        for `session`."""
        await self._gate.acquire(urgent)
        try:
            async with (self.engine.begin() if self.is_sqlite else self._autocommit.connect()) as conn:
                yield conn
        finally:
            self._gate.release(urgent)

    async def warm(self) -> None:
        """Open the pool's connections now (at start-up), so that the first burst of webhooks
        after a start - a provider delivering what queued while the gateway was away - does not
        wait for new connections. Best effort: the pool still connects on demand."""
        kept = self.engine.sync_engine.pool.size()  # type: ignore[attr-defined]  # a QueuePool on both backends
        opened = await asyncio.gather(*(self.engine.connect().start() for _ in range(kept)), return_exceptions=True)
        await asyncio.gather(*(c.close() for c in opened if not isinstance(c, BaseException)))
        failed = [c for c in opened if isinstance(c, BaseException)]
        if failed:
            log.warning("db.warm_up_failed", failed=len(failed), error=str(failed[0]))

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - readiness reports any failure as "not ready"
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


class PriorityGate:
    """Admits sessions; `urgent` ones first. With a `capacity` (SQLite: 1; PostgreSQL: the
    connections its pool keeps) at most that many are held at once, and waiting urgent sessions
    are woken before the others, each class in order. Urgent sessions never wait for each other
    below the capacity; the others wait while an urgent one is in progress, so that an
    acknowledgement does not queue in the event loop behind a burst of background work, and with
    `background` at most that many of them are held at once, admitted in the order they came."""

    def __init__(self, capacity: int | None, *, background: int | None = None) -> None:
        self.capacity = capacity
        self.background = background
        self._held = 0
        self._urgent_held = 0
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    def _room(self, urgent: bool) -> bool:
        if self.capacity is not None and self._held >= self.capacity:
            return False
        return urgent or self.background is None or self._held - self._urgent_held < self.background

    def _admits(self, urgent: bool) -> bool:
        if not self._room(urgent):
            return False
        return urgent and not self._urgent or not (urgent or self._urgent or self._normal or self._urgent_held)

    async def acquire(self, urgent: bool) -> None:
        if self._admits(urgent):
            self._take(urgent)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(waiter)
        try:
            await waiter  # _wake took the place for us
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(urgent)  # admitted just as the waiter was cancelled: pass it on
            else:
                queue.remove(waiter)
            raise

    def _take(self, urgent: bool) -> None:
        self._held += 1
        self._urgent_held += urgent

    def release(self, urgent: bool) -> None:
        self._held -= 1
        self._urgent_held -= urgent
        self._wake()

    def _wake(self) -> None:
        for urgent, queue in ((True, self._urgent), (False, self._normal)):
            while queue and self._room(urgent):
                if not urgent and self._urgent_held:
                    return
                waiter = queue.popleft()
                if not waiter.done():
                    self._take(urgent)
                    waiter.set_result(None)
            if queue:
                return


def _ping_after_idle(engine: AsyncEngine) -> None:
    """Check a connection on checkout when it was idle for IDLE_PING_SECONDS (SQLAlchemy's
    "pessimistic disconnect handling" by pool events): a dead one makes the pool take another."""
    pool, dialect = engine.sync_engine.pool, engine.sync_engine.dialect

    def checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as err:  # noqa: BLE001 - any failure: the pool replaces the connection
            raise exc.DisconnectionError(f"idle connection is gone: {err}") from err

    event.listen(pool, "checkin", checkin)
    event.listen(pool, "checkout", checkout)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the writer; NORMAL still survives a process crash.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
