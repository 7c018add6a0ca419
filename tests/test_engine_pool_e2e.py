"""A gateway with a pool of two real Rasa engines (SQLite: one tracker store per engine).

Routing is stable and uses both engines; an engine killed with SIGKILL under a stream of
conversations loses no message (its turns go to the other engine), readiness says 1/2, and after
the supervisor restarted it 2/2 and its conversations come back to it. The two engines are started
once for this module (about 30 s and 1.1 GB each)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import select

from bot.reference.demo_data import seed_demo_data
from bot.dispatcher import engine_sender
from bot.engine_pool import EnginePool
from bot.engine_process import EngineConfig, LocalEngines, train
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Conversation, Message
from resonanz.store.vocabulary import Direction, MessageStatus
from tests.conftest import free_port, make_database_url, migrated_database
from tests.support.engine_script import SCRIPT

pytestmark = pytest.mark.engine



@dataclass
class PoolGateway:
    url: str
    engines: LocalEngines
    pool: EnginePool
    db: Database
    token: str

    async def post(self, http: aiohttp.ClientSession, sender: str, text: str) -> dict:
        async with http.post(self.url + "/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def readyz(self, http: aiohttp.ClientSession) -> dict:
        async with http.get(self.url + "/readyz") as r:
            return await r.json()

    async def engine_sender_of(self, sender: str) -> str:
        async with self.db.session() as s:
            for conv in (await s.scalars(select(Conversation))).all():
                if sender in json.dumps(conv.address):
                    return engine_sender(conv.id, conv.engine_session)
        raise AssertionError(f"no conversation for {sender}")

    async def user_turns_on(self, http: aiohttp.ClientSession, engine_url: str, engine_sender_id: str) -> int:
        """How many customer messages this engine's own tracker store holds for the sender."""
        async with http.get(f"{engine_url}/conversations/{engine_sender_id}/tracker",
                            params={"token": self.token}) as r:
            assert r.status == 200, await r.text()
            events = (await r.json()).get("events") or []
        return sum(1 for e in events if e.get("event") == "user")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pool_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PoolGateway]:
    from resonanz.app import ENGINE, ENGINE_READY, create_app

    tmp = tmp_path_factory.mktemp("pool")
    models_dir = Settings().models_dir
    await asyncio.to_thread(train, models_dir)
    gw_port = free_port()
    token, action_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    engines = LocalEngines([
        EngineConfig(port=free_port(), token=token, action_url=f"http://127.0.0.1:{gw_port}/actions/webhook",
                     action_token=action_token, models_dir=models_dir, var_dir=tmp, index=i)
        for i in range(2)
    ])
    db_url, drop = await make_database_url("sqlite", tmp)
    db = await migrated_database(db_url)
    await seed_demo_data(db)
    settings = Settings(
        host="127.0.0.1", port=gw_port, DATABASE_URL=db_url, engine_urls=tuple(engines.urls),
        engine_token=token, action_token=action_token, engine_timeout=30.0, engine_startup_wait=240.0,
        engine_probe_seconds=0.5, var_dir=tmp,
    )
    app = await create_app(settings, db=db)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", gw_port).start()
    stop = asyncio.Event()
    supervisor: asyncio.Future[object] | None = None
    try:
        await engines.start()
        supervisor = asyncio.ensure_future(engines.supervise(stop))
        await engines.wait_ready()
        await asyncio.wait_for(app[ENGINE_READY].wait(), 60)
        deadline = asyncio.get_running_loop().time() + 60
        while await app[ENGINE].refresh() < 2:  # ready means one engine; the tests want both
            assert asyncio.get_running_loop().time() < deadline, "the second engine never came up"
            await asyncio.sleep(0.2)
        yield PoolGateway(f"http://127.0.0.1:{gw_port}", engines, app[ENGINE], db, token)
    finally:
        stop.set()
        if supervisor is not None:
            await supervisor
        await runner.cleanup()
        await engines.stop()
        await db.dispose()
        await drop()


async def wait_for_engines(gw: PoolGateway, http: aiohttp.ClientSession, up: int, timeout: float) -> dict:
    """Poll /readyz (an observable answer from other processes) until `up` engines are up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = await gw.readyz(http)
        if body["engines"]["up"] == up:
            return body
        assert loop.time() < deadline, f"engines never {up} up: {body}"
        await asyncio.sleep(0.2)


async def test_routing_is_stable_and_uses_both_engines(pool_gateway: PoolGateway) -> None:
    gw = pool_gateway
    urls = list(gw.pool.engines)
    owned: dict[str, list[tuple[str, str]]] = {u: [] for u in urls}
    run = secrets.token_hex(3)
    async with aiohttp.ClientSession() as http:
        for i in range(40):
            if all(len(v) >= 2 for v in owned.values()):
                break
            sender = f"route-{run}-{i}"
            for text in SCRIPT[:2]:
                body = await gw.post(http, sender, text)
                assert body["state"] == "bot" and body["messages"], body
            engine_sender_id = await gw.engine_sender_of(sender)
            owned[gw.pool.ring.preference(engine_sender_id)[0]].append((sender, engine_sender_id))
        assert all(len(v) >= 2 for v in owned.values()), owned
        # Each conversation's turns are in its own engine's tracker store, and only there.
        for url, conversations in owned.items():
            other = next(u for u in urls if u != url)
            for _sender, engine_sender_id in conversations:
                assert await gw.user_turns_on(http, url, engine_sender_id) == 2
                assert await gw.user_turns_on(http, other, engine_sender_id) == 0
        assert (await gw.readyz(http))["engines"] == {"up": 2, "total": 2}


async def test_an_engine_killed_under_load_loses_no_message_and_comes_back(pool_gateway: PoolGateway) -> None:
    gw = pool_gateway
    victim = gw.engines.processes[1]
    run = secrets.token_hex(3)
    senders = [f"kill-{run}-{i}" for i in range(8)]
    answered: list[dict] = []
    progress = asyncio.Condition()

    async def conversation(http: aiohttp.ClientSession, sender: str) -> None:
        for text in SCRIPT:
            body = await gw.post(http, sender, text)
            async with progress:
                answered.append(body)
                progress.notify_all()

    async with aiohttp.ClientSession() as http:
        assert (await wait_for_engines(gw, http, 2, 60))["engines"]["total"] == 2
        stream = asyncio.gather(*(conversation(http, s) for s in senders))
        async with progress:  # kill in the middle of the stream, with turns in flight
            await progress.wait_for(lambda: len(answered) >= len(senders))
        await victim.kill()
        await stream
        # Every message answered by the bot, none by the apology that queues the conversation.
        assert len(answered) == len(senders) * len(SCRIPT)
        assert all(b["state"] == "bot" and b["messages"] for b in answered), answered
        body = await wait_for_engines(gw, http, 1, 30)
        assert body["status"] == "ready" and body["engines"] == {"up": 1, "total": 2}
        # The supervisor restarts the killed engine; once it has loaded its model it is back.
        body = await wait_for_engines(gw, http, 2, 300)
        assert body["engines"] == {"up": 2, "total": 2}
        # Its conversations come back to it (per-engine SQLite: its tracker from before the kill).
        moved = [s for s in senders if gw.pool.ring.preference(await gw.engine_sender_of(s))[0] == victim.url]
        assert moved, "no conversation was routed to the killed engine"
        before = await gw.user_turns_on(http, victim.url, await gw.engine_sender_of(moved[0]))
        assert (await gw.post(http, moved[0], "Danke"))["state"] == "bot"
        assert await gw.user_turns_on(http, victim.url, await gw.engine_sender_of(moved[0])) == before + 1
    async with gw.db.session() as s:
        inbound = (await s.scalars(select(Message).where(Message.direction == Direction.IN))).all()
    assert inbound and all(m.status == MessageStatus.PROCESSED for m in inbound)
    assert not [m.parse_data for m in inbound if (m.parse_data or {}).get("error")]
