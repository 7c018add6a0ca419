"""The engine pool without Rasa: the hash ring, routing around engines that are down, the retry
of a turn whose engine died mid-call, the settings and the endpoints.yml each engine gets.
The same behaviour with two real engines: tests/test_engine_pool_e2e.py."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web

from bot.engine import EngineError
from bot.engine_pool import SILENT_PROBES_DOWN, EnginePool, HashRing
from bot.engine_process import EngineConfig, EngineProcess
from resonanz.settings import Settings
from tests.conftest import free_port
from tests.support.scripted_engine import ScriptedEngine, serve_engine

SENDERS = [f"conv-{i}:{i % 3}" for i in range(600)]


def test_ring_is_stable_and_spreads_keys() -> None:
    nodes = ["http://127.0.0.1:5005", "http://127.0.0.1:5006"]
    a, b = HashRing(nodes), HashRing(list(reversed(nodes)))  # another gateway, listed the other way
    owners = [a.preference(s)[0] for s in SENDERS]
    assert owners == [b.preference(s)[0] for s in SENDERS]
    share = Counter(owners)
    assert set(share) == set(nodes)
    assert min(share.values()) > 0.35 * len(SENDERS), share


def test_a_node_leaving_moves_only_its_own_keys() -> None:
    three = HashRing(["e1", "e2", "e3"])
    two = HashRing(["e1", "e3"])
    for s in SENDERS:
        before = three.preference(s)
        after = two.preference(s)[0]
        # Keys of e2 go to the next node on the ring; all others stay.
        assert after == (before[1] if before[0] == "e2" else before[0])
    assert sorted(three.preference("x")) == ["e1", "e2", "e3"]


class DyingEngine(ScriptedEngine):
    """Drops the connection in the middle of every turn, as an engine killed mid-call does."""

    async def turn(self, request: web.Request) -> web.Response:
        self.turns.append(await request.json())
        assert request.transport is not None
        request.transport.close()
        raise ConnectionResetError


async def test_pool_routes_around_a_down_engine_and_retries_a_turn_whose_engine_died() -> None:
    healthy, dying = ScriptedEngine(), DyingEngine()
    async with serve_engine(healthy) as url_ok, serve_engine(dying) as url_dying, aiohttp.ClientSession() as http:
        pool = EnginePool([url_ok, url_dying], "tok", timeout=5, session=http)
        assert (pool.up, pool.total) == (0, 2)
        assert await pool.is_ready()
        assert pool.up == 2
        on_dying = next(s for s in SENDERS if pool.ring.preference(s)[0] == url_dying)
        on_ok = next(s for s in SENDERS if pool.ring.preference(s)[0] == url_ok)
        # The owner dies mid-call: answered by the other engine, and the dead one is marked down.
        turn = await pool.turn(on_dying, "hallo", message_id="m-1")
        assert turn.replies[0].text == "bot:greet"
        # The retry carries the same message id (a shared tracker may hold the turn already).
        assert [(t["sender"], t["message_id"]) for t in dying.turns] == [(on_dying, "m-1")]
        assert [(t["sender"], t["message_id"]) for t in healthy.turns] == [(on_dying, "m-1")]
        assert pool.up == 1
        # While it is down its senders skip it without trying.
        await pool.turn(on_dying, "noch da?")
        assert len(dying.turns) == 1 and len(healthy.turns) == 2
        await pool.turn(on_ok, "hallo")
        # It answers /status again: the next probe gives its senders back.
        assert await pool.refresh() == 2
        assert pool.route(on_dying).base_url == url_dying  # type: ignore[union-attr]


async def test_one_engine_that_died_is_the_callers_error() -> None:
    dying = DyingEngine()
    async with serve_engine(dying) as url, aiohttp.ClientSession() as http:
        pool = EnginePool([url], "tok", timeout=5, session=http)
        assert await pool.is_ready()
        with pytest.raises(EngineError) as info:
            await pool.turn("s1", "hallo")
        assert info.value.reason == "engine_unreachable"
        assert len(dying.turns) == 1  # tried once: there is no other engine
        assert pool.up == 0


class BusyEngine(ScriptedEngine):
    """Answers its status only when released, as an engine with a queue of turns does."""

    def __init__(self) -> None:
        super().__init__()
        self.released = asyncio.Event()
        self.released.set()

    async def status(self, request: web.Request) -> web.Response:
        await self.released.wait()
        return await super().status(request)


async def test_a_busy_engine_keeps_its_conversations_a_gone_one_loses_them_at_once() -> None:
    busy, other = BusyEngine(), ScriptedEngine()
    # Probes time out after 0.5 s: long enough that an engine that is up answers in time on a
    # loaded machine (CI), short enough for five silent probes of the held one.
    async with serve_engine(other) as url_other, aiohttp.ClientSession() as http:
        async with serve_engine(busy) as url_busy:
            pool = EnginePool([url_busy, url_other], "tok", timeout=5, session=http, probe_timeout=0.5)
            assert await pool.refresh() == 2
            busy.released.clear()
            for _ in range(SILENT_PROBES_DOWN - 1):
                assert await pool.refresh() == 2  # late answers: busy, still up
            assert await pool.refresh() == 1  # silent for too long: hung
            busy.released.set()
            assert await pool.refresh() == 2
        # Its server is gone: the next probe is refused and takes it out at once.
        assert await pool.refresh() == 1
        assert pool.route("anyone").base_url == url_other  # type: ignore[union-attr]


def test_engine_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESONANZ_ENGINE_URLS", "http://e1:5005, http://e2:5005")
    s = Settings()
    assert s.external_engine_urls == ("http://e1:5005", "http://e2:5005")
    assert s.resolved_engine_urls == s.external_engine_urls
    monkeypatch.delenv("RESONANZ_ENGINE_URLS")
    monkeypatch.setenv("RESONANZ_ENGINE_URL", "http://one:5005")
    assert Settings().resolved_engine_urls == ("http://one:5005",)
    monkeypatch.delenv("RESONANZ_ENGINE_URL")
    monkeypatch.setenv("RESONANZ_ENGINES", "3")
    monkeypatch.setenv("RESONANZ_ENGINE_PORT", "6000")
    s = Settings()
    assert s.external_engine_urls == ()
    assert s.resolved_engine_urls == ("http://127.0.0.1:6000", "http://127.0.0.1:6001", "http://127.0.0.1:6002")


def _endpoints(tmp_path: Path, **config: object) -> dict:
    # Written into endpoints.yml only (nothing binds), yet never a fixed port.
    values: dict = {"port": free_port(), "token": "t", "action_url": f"http://127.0.0.1:{free_port()}/actions/webhook",
                    "action_token": "a", "models_dir": tmp_path, "var_dir": tmp_path}
    values.update(config)
    endpoints, _credentials = EngineProcess(EngineConfig(**values)).write_config()
    return yaml.safe_load(endpoints.read_text())


def test_endpoints_lock_store_with_redis_and_tracker_store_per_backend(tmp_path: Path) -> None:
    plain = _endpoints(tmp_path)
    assert "lock_store" not in plain  # one engine, no Redis: Rasa's in-memory locks
    first, second = _endpoints(tmp_path, index=0, port=free_port()), _endpoints(tmp_path, index=1, port=free_port())
    assert first["tracker_store"]["db"] != second["tracker_store"]["db"]  # SQLite: one file each
    pg = "postgresql+asyncpg://app:secret@db.internal:5433/resonanz"
    shared = [_endpoints(tmp_path, index=i, port=free_port(), database_url=pg)["tracker_store"] for i in (0, 1)]
    assert shared[0] == shared[1] == {
        "type": "SQL", "dialect": "postgresql", "url": "db.internal", "port": 5433, "db": "resonanz",
        "username": "app", "password": "secret",
    }
    locked = _endpoints(tmp_path, database_url=pg, redis_url="redis://:pw@cache.internal:6380/2")
    assert locked["lock_store"] == {
        "type": "bot.rasa_plugin.lock_store.AtomicRedisLockStore", "url": "cache.internal", "port": 6380, "db": 2, "password": "pw",
        "key_prefix": "resonanz", "use_ssl": False,
    }
