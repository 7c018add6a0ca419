"""An engine killed under load in the two-gateway topology (resonanz/topology.py): two gateway
processes in front of two real Rasa engines that share the PostgreSQL tracker store and the
Redis lock store. Customers write to either gateway, turn by turn (no stickiness); one engine is
killed with SIGKILL mid-stream. Every message is answered by the bot (none by the apology), both
gateways report 1 of 2 engines up, and a conversation of the killed engine continues on the other
one with its whole history (the shared tracker store), not afresh, and each message stored once.

tests/test_engine_pool_e2e.py covers one in-process gateway on per-engine SQLite stores (and the
killed engine's return); this is the shared-store, several-gateway case. The engines take
about 30 s to load (1.1 GB each)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from bot.dispatcher import engine_sender
from bot.engine_pool import HashRing
from resonanz.store import Database
from resonanz.store.models import Conversation, Message
from resonanz.store.vocabulary import Direction, MessageStatus
from resonanz.topology import GatewayProcess, Topology
from tests.conftest import REDIS_URL, make_database_url, migrated_database, require_redis
from tests.support.engine_script import SCRIPT

pytestmark = [pytest.mark.engine, pytest.mark.redis]

WAIT = 60.0


async def _post(http: aiohttp.ClientSession, gateway: GatewayProcess, sender: str, text: str) -> dict:
    async with http.post(gateway.url + "/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _engine_senders(db: Database, customers: list[str]) -> dict[str, str]:
    """Customer (REST sender) -> the engine-side sender of their conversation."""
    async with db.session() as s:
        convs = (await s.scalars(select(Conversation))).all()
    return {who: engine_sender(c.id, c.engine_session) for c in convs for who in customers
            if json.dumps(who) in json.dumps(c.address)}


async def _user_turns(http: aiohttp.ClientSession, engine_url: str, token: str, sender: str) -> int:
    async with http.get(f"{engine_url}/conversations/{sender}/tracker", params={"token": token}) as r:
        assert r.status == 200, await r.text()
        return sum(1 for e in (await r.json()).get("events") or [] if e.get("event") == "user")


async def _engines_up(http: aiohttp.ClientSession, gateway: GatewayProcess, up: int) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while True:  # another process's view: poll its readiness
        _, body = await gateway.readyz(http)
        if body["engines"]["up"] == up:
            return body
        assert loop.time() < deadline, f"{gateway.url}: engines never {up} up: {body}"
        await asyncio.sleep(0.2)


async def test_an_engine_killed_under_load_its_conversations_continue_on_the_other(tmp_path: Path) -> None:
    await require_redis()
    started = time.monotonic()
    url, drop = await make_database_url("postgresql", tmp_path)
    db = await migrated_database(url)
    try:
        topology = Topology(url, REDIS_URL, tmp_path / "topology", connectors=("rest",),
                            settings={"engine_timeout": 60.0, "engine_probe_seconds": 0.5,
                                      "redis_channel": "test:" + secrets.token_hex(6)})
        async with topology, aiohttp.ClientSession() as http:
            a, b = topology.gateway(0), topology.gateway(1)
            for gateway in (a, b):
                await _engines_up(http, gateway, 2)
            ready = time.monotonic() - started
            # Custom actions work from both engines (each calls its own gateway's action server).
            for gateway in (a, b):
                for n in range(2):
                    r = await _post(http, gateway, f"action-{secrets.token_hex(3)}-{n}", "Gibt es eine Störung in 10115?")
                    assert r["state"] == "bot" and r["messages"], r
            victim = topology.local.processes[1]
            run = secrets.token_hex(3)
            customers = [f"kill-{run}-{i}" for i in range(8)]
            answered: list[dict] = []
            progress = asyncio.Condition()

            async def customer(i: int, sender: str) -> None:
                for j, text in enumerate(SCRIPT):
                    body = await _post(http, [a, b][(i + j) % 2], sender, text)
                    async with progress:
                        answered.append(body)
                        progress.notify_all()

            stream = asyncio.gather(*(customer(i, s) for i, s in enumerate(customers)))
            async with progress:  # the kill in the middle of the stream, with turns in flight
                await asyncio.wait_for(progress.wait_for(lambda: len(answered) >= len(customers)), WAIT)
            await victim.kill()
            await stream
            assert len(answered) == len(customers) * len(SCRIPT)
            wrong = [r for r in answered if r["state"] != "bot" or not r["messages"]]
            assert wrong == [], "\n".join(f"--- {g.url}\n{g.tail(4000)}" for g in (a, b))
            for gateway in (a, b):
                assert (await _engines_up(http, gateway, 1))["engines"] == {"up": 1, "total": 2}

            # The killed engine's conversations went on on the survivor, with their whole history.
            survivor = topology.local.processes[0].url
            ring = HashRing(topology.all_engine_urls)
            senders = await _engine_senders(db, customers)
            moved = [c for c in customers if ring.preference(senders[c])[0] == victim.url]
            assert moved, "no conversation was routed to the killed engine"
            for c in moved:
                # Its whole history, not afresh, each message once: when the killed engine had
                # stored a message before it died, the retry (same message id) answers what it
                # recorded instead of storing it again.
                turns = await _user_turns(http, survivor, topology.engine_token, senders[c])
                assert turns == len(SCRIPT), (c, turns)
            async with db.session() as s:
                inbound = (await s.scalars(select(Message).where(Message.direction == Direction.IN))).all()
            assert len(inbound) == len(answered) + 4  # and the four action turns
            assert all(m.status == MessageStatus.PROCESSED for m in inbound)
            assert not [m.parse_data for m in inbound if (m.parse_data or {}).get("error")]
    finally:
        await db.dispose()
        await drop()
    print(f"\n[topology] engine killed: {time.monotonic() - started:.1f}s (topology ready after {ready:.1f}s)")
