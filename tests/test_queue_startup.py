"""Gateways started at once create the configured queues at once (handover.queries.ensure_queues):
each must start, none may fail on a queue another one created a moment earlier (seen with two
gateways of the topology: the second exited with a unique violation on queues.name)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select

from handover.queries import ensure_queues
from resonanz.store import Database
from resonanz.store.models import Queue
from tests.conftest import make_database_url, migrated_database


async def test_gateways_creating_the_queues_at_once_all_succeed(tmp_path: Path) -> None:
    url, drop = await make_database_url("postgresql", tmp_path)
    db = await migrated_database(url)
    gateways = [Database(url) for _ in range(3)]  # each process has its own pool
    try:
        async def start_up(gateway: Database) -> None:
            async with gateway.session() as s:
                await ensure_queues(s, {"billing"})

        results = await asyncio.gather(*(start_up(g) for g in gateways), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        async with db.session() as s:
            assert await s.scalar(select(func.count()).select_from(Queue)) == 4  # general + billing, de + en
    finally:
        for g in gateways:
            await g.dispose()
        await db.dispose()
        await drop()
