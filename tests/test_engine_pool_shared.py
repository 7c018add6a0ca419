"""Two real engines on one PostgreSQL tracker store with Rasa's RedisLockStore (the endpoints.yml
`resonanz run` writes when Redis is configured): one conversation, served by both engines in turn
and by both at once, stays whole and in order. Only responses (no custom actions) are used, so
no gateway runs here."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from bot.engine import RasaEngine
from bot.engine_process import EngineConfig, LocalEngines, train
from resonanz.settings import Settings
from tests.conftest import REDIS_URL, free_port, make_database_url, require_redis

pytestmark = [pytest.mark.engine, pytest.mark.redis]


@dataclass
class SharedEngines:
    urls: list[str]
    token: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shared_engines(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SharedEngines]:
    await require_redis()
    tmp: Path = tmp_path_factory.mktemp("shared")
    db_url, drop = await make_database_url("postgresql", tmp)
    models_dir = Settings().models_dir
    await asyncio.to_thread(train, models_dir)
    token = secrets.token_urlsafe(16)
    engines = LocalEngines([
        EngineConfig(port=free_port(), token=token, action_url=f"http://127.0.0.1:{free_port()}/actions/webhook",
                     action_token="unused", models_dir=models_dir, var_dir=tmp, index=i,
                     database_url=db_url, redis_url=REDIS_URL)
        for i in range(2)
    ])
    try:
        await engines.start()
        await engines.wait_ready()
        yield SharedEngines(engines.urls, token)
    finally:
        await engines.stop()
        await drop()


def assert_whole_and_in_order(events: list[dict], expected_user_turns: int) -> None:
    """Every customer message is there, and each one was answered (bot, then action_listen)
    before the next one was taken."""
    kinds = [e["event"] if e["event"] != "action" else e.get("name") for e in events]
    users = [i for i, k in enumerate(kinds) if k == "user"]
    assert len(users) == expected_user_turns, kinds
    for start, end in zip(users, [*users[1:], len(kinds)], strict=True):
        between = kinds[start + 1:end]
        assert "bot" in between and between[-1] == "action_listen", kinds


async def test_one_conversation_on_two_engines_stays_whole_and_in_order(shared_engines: SharedEngines) -> None:
    sender = "shared-" + secrets.token_hex(4)
    async with aiohttp.ClientSession() as http:
        a, b = (RasaEngine(u, shared_engines.token, timeout=60, session=http) for u in shared_engines.urls)
        # In turn: each engine continues from the turns the other one took.
        await a.turn(sender, "Wann haben Sie geöffnet?")
        await b.turn(sender, "Wie kann ich Sie erreichen?")
        # At once: the Redis lock makes one engine wait for the other.
        rounds = [("Welche Zahlungsarten gibt es?", "Wann kommt meine Rechnung?"),
                  ("Wie sind Ihre Öffnungszeiten?", "Wie kann ich Sie erreichen?"),
                  ("Welche Zahlungsarten gibt es?", "Wann haben Sie geöffnet?")]
        for first, second in rounds:
            turns = await asyncio.gather(a.turn(sender, first), b.turn(sender, second))
            assert all(t.replies for t in turns)
        for engine_url in shared_engines.urls:
            async with http.get(f"{engine_url}/conversations/{sender}/tracker",
                                params={"token": shared_engines.token}) as r:
                assert r.status == 200
                events = (await r.json())["events"]
            assert_whole_and_in_order(events, 2 + 2 * len(rounds))
