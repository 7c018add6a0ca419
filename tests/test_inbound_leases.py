"""Inbound messages carry a lease while their turn is pending or running: another gateway process
(a different lease owner on the same database) takes only messages whose lease ran out, and a
turn that runs long renews its lease, so a slow engine does not get its message stolen."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import func, select, update

from bot.dispatcher import Dispatcher
from connectors.base import ChannelAddress, InboundMessage
from resonanz.app import DISPATCHER, ENGINE, ENGINE_READY, create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Message, utcnow
from resonanz.store.vocabulary import Direction
from tests.support.scripted_engine import ScriptedEngine, serve_engine


class HeldEngine(ScriptedEngine):
    """Thinks until the test lets it answer."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()

    async def turn(self, request: web.Request) -> web.Response:
        self.entered.set()
        await self.gate.wait()
        return await super().turn(request)


@pytest.fixture
async def engine() -> AsyncIterator[tuple[HeldEngine, str]]:
    held = HeldEngine()
    async with serve_engine(held) as url:
        yield held, url


async def _two_processes(database: Database, tmp_path: Path, engine_url: str,
                         **overrides: object) -> tuple[list[web.Application], Dispatcher, Dispatcher]:
    settings = Settings(DATABASE_URL=database.url, engine_url=engine_url, connectors=("rest",), var_dir=tmp_path,
                        offer_choice_at_start=False, **overrides)
    apps = [await create_app(settings, db=database), await create_app(settings, db=database)]
    for app in apps:
        app[ENGINE_READY].set()
    a, b = apps[0][DISPATCHER], apps[1][DISPATCHER]
    assert a.outbox.owner != b.outbox.owner
    return apps, a, b


async def _close(apps: list[web.Application]) -> None:
    for app in apps:  # never started: close what create_app opened
        await app[DISPATCHER].close()
        await app[ENGINE].session.close()


def _inbound(sender: str, text: str = "Hallo") -> InboundMessage:
    return InboundMessage(channel="rest", sender_id=sender, text=text, address=ChannelAddress("rest", sender))


async def _replies(database: Database, conversation_id: str) -> int:
    async with database.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == conversation_id, Message.direction == Direction.OUT)) or 0)


async def _expire(database: Database, *pks: int) -> None:
    """What a process that died leaves behind: its leases run out."""
    async with database.session() as s:
        await s.execute(update(Message).where(Message.id.in_(pks))
                        .values(lease_expires_at=utcnow() - timedelta(seconds=1)))


async def test_a_message_leased_by_a_live_peer_is_not_taken(
    database: Database, tmp_path: Path, engine: tuple[HeldEngine, str]
) -> None:
    apps, a, b = await _two_processes(database, tmp_path, engine[1])
    try:
        pk, conversation_id, _, _ = await a.intake.store(_inbound("peer-live"))
        async with database.session() as s:
            owner = await s.scalar(select(Message.lease_owner).where(Message.id == pk))
        assert owner == a.outbox.owner  # stored already leased by the process that stored it
        assert await b.recover() == 0
        assert engine[0].turns == [] and await _replies(database, conversation_id) == 0
    finally:
        await _close(apps)


async def test_an_expired_lease_is_taken_and_answered_exactly_once(
    database: Database, tmp_path: Path, engine: tuple[HeldEngine, str]
) -> None:
    apps, a, b = await _two_processes(database, tmp_path, engine[1])
    try:
        pk, conversation_id, _, _ = await a.intake.store(_inbound("peer-dead"))
        await _expire(database, pk)
        assert await b.recover() == 1
        assert await a.recover() == 0 and await b.recover() == 0
        assert len(engine[0].turns) == 1
        assert await _replies(database, conversation_id) == 1
        async with database.session() as s:
            row = (await s.execute(select(Message.status, Message.lease_owner).where(Message.id == pk))).one()
        assert tuple(row) == ("processed", None)
    finally:
        await _close(apps)


async def test_a_long_turn_keeps_its_lease(database: Database, tmp_path: Path, engine: tuple[HeldEngine, str]) -> None:
    held, url = engine
    held.gate.clear()
    apps, a, b = await _two_processes(database, tmp_path, url, turn_lease_seconds=0.6)
    try:
        result = await a.accept(_inbound("slow-engine"))
        await asyncio.wait_for(held.entered.wait(), 10)
        async with database.session() as s:
            pk, first = (await s.execute(select(Message.id, Message.lease_expires_at)
                                         .where(Message.public_id == result.message_id))).one()
        # Wait until the first lease has run out and a renewed one stands in its place.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            async with database.session() as s:
                current = await s.scalar(select(Message.lease_expires_at).where(Message.id == pk))
            if utcnow() > first and current is not None and current > utcnow():
                break
            assert asyncio.get_running_loop().time() < deadline, "the lease was not renewed"
            await asyncio.sleep(0.05)  # polling the database for the renewal, with a deadline
        assert await b.recover() == 0
        held.gate.set()
        await asyncio.wait_for(a.settled(), 10)
        assert len(held.turns) == 1
        assert await _replies(database, result.conversation_id) == 1
    finally:
        held.gate.set()
        await _close(apps)


async def test_two_concurrent_claimers_get_disjoint_sets(
    database: Database, tmp_path: Path, engine: tuple[HeldEngine, str]
) -> None:
    apps, a, b = await _two_processes(database, tmp_path, engine[1])
    try:
        pks = [(await a.intake.store(_inbound(f"claim-{i}")))[0] for i in range(12)]
        await _expire(database, *pks)
        first, second = await asyncio.gather(a.leases.claim(), b.leases.claim())
        mine, theirs = {r[0] for r in first}, {r[0] for r in second}
        assert not mine & theirs
        assert mine | theirs == set(pks)
        async with database.session() as s:
            owners = dict((await s.execute(select(Message.id, Message.lease_owner).where(Message.id.in_(pks)))).all())
        assert all(owners[pk] == a.outbox.owner for pk in mine)
        assert all(owners[pk] == b.outbox.owner for pk in theirs)
    finally:
        await _close(apps)


async def test_the_periodic_sweep_answers_a_message_whose_process_died(
    database: Database, tmp_path: Path, engine: tuple[HeldEngine, str]
) -> None:
    apps, a, b = await _two_processes(database, tmp_path, engine[1], turn_sweep_seconds=0.2)
    try:
        pk, conversation_id, _, _ = await a.intake.store(_inbound("swept"))
        await _expire(database, pk)  # `a` died after storing it
        b.start()
        deadline = asyncio.get_running_loop().time() + 10
        while await _replies(database, conversation_id) == 0:
            assert asyncio.get_running_loop().time() < deadline, "the sweep did not answer the message"
            await asyncio.sleep(0.05)  # polling the database for the answer, with a deadline
        async with database.session() as s:
            assert await s.scalar(select(Message.status).where(Message.id == pk)) == "processed"
        assert len(engine[0].turns) == 1
    finally:
        await _close(apps)
