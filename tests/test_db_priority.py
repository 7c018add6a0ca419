"""The database handle gives acknowledgements priority over background work.

- On SQLite's one connection, an `urgent` session (storing what a webhook acknowledges) is admitted
  before background sessions that queued earlier; on PostgreSQL background sessions wait while an
  urgent one runs, and urgent ones never wait for each other.
- On PostgreSQL at most `background_sessions` background sessions run at once (a few turns'
  round trips in the event loop at a time, not every turn's: an acknowledgement waits behind
  fewer of them, bench/pipeline.py); urgent ones are never held back by that limit.
- On PostgreSQL sessions never open connections beyond those the pool keeps (a burst waits a
  round trip for one instead of 25-40 ms for a new connection), and the gateway opens them all
  before it serves: the burst of webhooks a provider delivers after a restart finds them open.
- A cancelled waiter neither keeps its place nor loses the turn it was just handed.
- On SQLite a statement costs one trip to the driver's thread (resonanz/store/sqlite_driver.py),
  and statements, errors and rows behave as with the stock adapter.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine.interfaces import CacheStats
from sqlalchemy.exc import IntegrityError

from connectors.base import ChannelAddress, InboundMessage
from resonanz.app import DISPATCHER
from resonanz.keys import DB
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.db import BACKGROUND_SESSIONS, POOL_SIZE, PriorityGate
from resonanz.store.models import Customer
from tests.conftest import migrated_database
from tests.support.push import World, world  # noqa: F401 - the fixture

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _admitted_order(gate: PriorityGate, entries: list[tuple[str, bool]]) -> list[str]:
    """Hold the gate, queue `entries` (name, urgent) in order, release; the order they got in."""
    order: list[str] = []
    await gate.acquire(False)

    async def enter(name: str, urgent: bool) -> None:
        await gate.acquire(urgent)
        order.append(name)
        gate.release(urgent)

    tasks = [asyncio.create_task(enter(n, u)) for n, u in entries]
    for _ in range(3):
        await asyncio.sleep(0)  # let every task reach its wait (not a wait on time)
    assert order == []
    gate.release(False)
    await asyncio.gather(*tasks)
    return order


async def test_urgent_sessions_go_first_on_one_connection() -> None:
    order = await _admitted_order(PriorityGate(1), [("bg1", False), ("ack1", True), ("bg2", False), ("ack2", True)])
    assert order == ["ack1", "ack2", "bg1", "bg2"]


async def test_background_waits_while_urgent_runs_on_a_pool() -> None:
    gate = PriorityGate(None)
    await gate.acquire(True)
    await gate.acquire(True)  # urgent ones do not wait for each other
    background = asyncio.create_task(gate.acquire(False))
    await asyncio.sleep(0)
    assert not background.done()
    gate.release(True)
    await asyncio.sleep(0)
    assert not background.done()
    gate.release(True)
    await asyncio.wait_for(background, 5)
    gate.release(False)


async def test_a_pool_admits_a_few_background_sessions_at_a_time_in_order() -> None:
    gate = PriorityGate(None, background=2)
    await gate.acquire(False)
    await gate.acquire(False)
    third = asyncio.create_task(gate.acquire(False))
    await asyncio.sleep(0)
    fourth = asyncio.create_task(gate.acquire(False))
    await asyncio.sleep(0)
    assert not third.done() and not fourth.done()
    await asyncio.wait_for(gate.acquire(True), 5)  # the limit does not hold back an acknowledgement
    gate.release(True)
    gate.release(False)
    await asyncio.wait_for(third, 5)  # the first in line
    await asyncio.sleep(0)
    assert not fourth.done()
    gate.release(False)
    await asyncio.wait_for(fourth, 5)
    gate.release(False)
    gate.release(False)


async def test_postgresql_sessions_beyond_the_limit_wait_for_a_place(pg_url: str) -> None:
    db = Database(pg_url)
    held, release = asyncio.Event(), asyncio.Event()
    inside = 0

    async def holder() -> None:
        nonlocal inside
        async with db.session() as s:
            inside += 1  # admitted (a session connects on its first statement)
            if inside == BACKGROUND_SESSIONS:
                held.set()
            await s.execute(text("SELECT 1"))
            await release.wait()

    try:
        holders = [asyncio.create_task(holder()) for _ in range(BACKGROUND_SESSIONS)]
        await asyncio.wait_for(held.wait(), 30)
        late = asyncio.create_task(holder())
        for _ in range(3):
            await asyncio.sleep(0)
        assert inside == BACKGROUND_SESSIONS and not late.done()
        async with db.session(urgent=True) as s:  # an acknowledgement's session is not held back
            assert await s.scalar(text("SELECT 1")) == 1
        release.set()
        await asyncio.wait_for(asyncio.gather(*holders, late), 30)
        assert inside == BACKGROUND_SESSIONS + 1
    finally:
        await db.dispose()


async def test_a_burst_of_sessions_opens_no_more_connections_than_the_pool_keeps(pg_url: str) -> None:
    db = Database(pg_url)
    opened = 0

    def count(*_: object) -> None:
        nonlocal opened
        opened += 1

    event.listen(db.engine.sync_engine, "connect", count)

    async def acknowledgement() -> None:
        async with db.session(urgent=True) as s:
            assert await s.scalar(text("SELECT 1")) == 1

    try:
        await asyncio.wait_for(asyncio.gather(*(acknowledgement() for _ in range(3 * POOL_SIZE))), 60)
        assert 0 < opened <= POOL_SIZE
    finally:
        await db.dispose()


async def test_the_gateway_opens_its_pool_and_compiles_its_intake_before_it_serves(world: World) -> None:
    db = world.app[DB]
    pool = db.engine.sync_engine.pool
    assert pool.checkedin() + pool.checkedout() == (1 if db.is_sqlite else POOL_SIZE)  # open connections
    compiled: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        # The intake's (background sweeps of their own run meanwhile, compiled or not)
        intake = "channel_identities" in statement or "INSERT INTO messages" in statement
        if intake and context.cache_hit is not CacheStats.CACHE_HIT:
            compiled.append(statement)

    event.listen(db.engine.sync_engine, "after_cursor_execute", executed)
    sender = uuid.uuid4().hex
    message = InboundMessage(channel="telegram", sender_id=sender, text="Hallo", address=ChannelAddress("telegram", sender))
    stored = await world.app[DISPATCHER].intake.store(message)
    assert isinstance(stored, tuple)
    assert compiled == []  # a first contact after the start


def test_the_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESONANZ_DB_BACKGROUND_SESSIONS", "5")
    assert Settings().db_background_sessions == 5
    assert Database("postgresql://127.0.0.1/x", background_sessions=5)._gate.background == 5
    assert Database("postgresql://127.0.0.1/x", background_sessions=0)._gate.background is None  # 0: no limit


async def test_cancelled_waiter_gives_up_its_place() -> None:
    gate = PriorityGate(1)
    await gate.acquire(False)
    cancelled = asyncio.create_task(gate.acquire(True))
    waiting = asyncio.create_task(gate.acquire(False))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    gate.release(False)
    await asyncio.wait_for(waiting, 5)  # the turn went past the cancelled waiter
    gate.release(False)
    await asyncio.wait_for(gate.acquire(False), 5)  # and nothing is left held


async def test_urgent_session_overtakes_queued_sessions(database: Database) -> None:
    order: list[str] = []
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with database.session():
            holding.set()
            await release.wait()

    async def session(name: str, urgent: bool) -> None:
        async with database.session(urgent=urgent) as s:
            await s.execute(text("SELECT 1"))
            order.append(name)

    first = asyncio.create_task(holder())
    await holding.wait()
    tasks = [asyncio.create_task(session("bg", False)), asyncio.create_task(session("ack", True))]
    for _ in range(3):
        await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *tasks)
    if database.is_sqlite:
        assert order == ["ack", "bg"]
    else:
        assert order[0] == "ack" or set(order) == {"ack", "bg"}


async def test_sqlite_statement_is_one_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = await migrated_database(f"sqlite:///{tmp_path / 'trips.db'}")
    trips = 0
    original = aiosqlite.core.Connection._execute

    async def counting(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal trips
        trips += 1
        return await original(self, fn, *args, **kwargs)

    try:
        async with db.session() as s:  # connect outside the count
            await s.execute(text("SELECT 1"))
        monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counting)
        async with db.session() as s:
            s.add(Customer(name="Ada"))
            await s.flush()
            rows = (await s.scalars(select(Customer.name))).all()
        assert rows == ["Ada"]
        assert trips == 3  # insert, select, commit
        with pytest.raises(IntegrityError):
            async with db.session() as s:
                await s.execute(text("INSERT INTO customers (id) VALUES (NULL)"))
    finally:
        await db.dispose()
