"""The web chat identity: a token the server issues (high entropy, stored only as a hash, idle
expiry), a checked Origin before the upgrade, frames limited per socket and per client address,
a bounded queue per socket, and a token that never reaches the logs."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, text, update

from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, WebChatSession, utcnow
from tests.conftest import free_port
from tests.support.scripted_engine import ScriptedEngine, serve_engine
from tests.support.webchat_client import connect, hello, open_session, own_origin, until_ack

Factory = Callable[..., Any]


@pytest_asyncio.fixture(loop_scope="session")
async def make_client(database: Database, tmp_path) -> AsyncIterator[Factory]:  # noqa: ANN001
    """A gateway with the web chat and no engine (every message gets the apology), built with the
    given web chat options and settings."""
    clients: list[TestClient] = []

    async def make(engine_url: str | None = None, public_url: str | None = None,
                   settings_overrides: dict[str, Any] | None = None, **options: Any) -> TestClient:
        settings = Settings(
            DATABASE_URL=database.url, engine_url=engine_url or f"http://127.0.0.1:{free_port()}",
            engine_startup_wait=0 if engine_url is None else 30, connectors=("webchat",), var_dir=tmp_path,
            connector_options={"webchat": options}, public_url=public_url, **(settings_overrides or {}),
        )
        client = TestClient(TestServer(await create_app(settings, db=database)))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


async def _refused(client: TestClient, token: Any) -> aiohttp.ClientWebSocketResponse:
    async with connect(client) as ws:
        await ws.send_json({"type": "hello", "token": token})
        err = await ws.receive_json(timeout=10)
        assert err["type"] == "error" and err["code"] == "session_invalid", err
        closing = await ws.receive(timeout=10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == 4401
    return ws


async def test_a_token_the_browser_made_up_is_refused(make_client: Factory) -> None:
    client = await make_client()
    await _refused(client, secrets.token_urlsafe(32))
    await _refused(client, "short")
    await _refused(client, 12345)


async def test_the_server_issues_the_token_and_it_survives_a_reload_and_a_second_tab(make_client: Factory) -> None:
    client = await make_client()
    async with connect(client) as ws:
        token, history = await open_session(ws)
        assert len(token) >= 43  # 32 random bytes
        assert {k: history[k] for k in ("type", "conversation_id", "state", "messages")} == {
            "type": "history", "conversation_id": None, "state": None, "messages": []}  # nothing of anyone yet
        await ws.send_json({"type": "message", "text": "Hallo", "client_id": "c-1"})
        await until_ack(ws)
    async with connect(client) as tab1, connect(client) as tab2:
        h1, h2 = await hello(tab1, token), await hello(tab2, token)
    assert [m["text"] for m in h1["messages"]][0] == "Hallo" and h1 == h2


async def test_only_the_tokens_hash_is_stored(database: Database, make_client: Factory) -> None:
    client = await make_client()
    async with connect(client) as ws:
        token, _ = await open_session(ws)
        await ws.send_json({"type": "message", "text": "Hallo", "client_id": "c-1"})
        await until_ack(ws)
    async with database.session() as s:
        rows = (await s.scalars(select(WebChatSession))).all()
        identities = (await s.scalars(select(ChannelIdentity).where(ChannelIdentity.channel == "webchat"))).all()
        conversations = (await s.scalars(select(Conversation).where(Conversation.channel == "webchat"))).all()
    assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert [i.external_id for i in identities] == [rows[0].id]  # the identity is the public id
    assert token not in repr([(i.external_id, i.address) for i in identities] + [c.address for c in conversations])


async def test_an_idle_session_expires(database: Database, make_client: Factory) -> None:
    client = await make_client(session_idle_days=2)
    async with connect(client) as ws:
        token, _ = await open_session(ws)
    async with database.session() as s:
        await s.execute(update(WebChatSession).values(last_seen_at=utcnow() - timedelta(days=3)))
    await _refused(client, token)


async def test_origin_is_checked_before_the_upgrade(make_client: Factory) -> None:
    client = await make_client(allowed_origins=["https://shop.example"])
    for origin in (None, "https://evil.example", "null", "http://127.0.0.1.evil.example"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            async with client.ws_connect("/webchat/ws", **({"origin": origin} if origin else {})):
                pass
        assert err.value.status == 403
    for origin in (own_origin(client), "https://shop.example", "https://SHOP.example"):
        async with connect(client, origin=origin) as ws:
            await open_session(ws)


async def test_with_a_public_url_its_origin_is_the_gateways_own(make_client: Factory) -> None:
    client = await make_client(public_url="https://chat.stadtwerke.example/")
    async with connect(client, origin="https://chat.stadtwerke.example") as ws:
        await open_session(ws)
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        async with connect(client):  # the address it was reached by is not the public origin
            pass
    assert err.value.status == 403


async def _kinds(ws: aiohttp.ClientWebSocketResponse, n: int) -> Counter[str]:
    frames = [await ws.receive_json(timeout=10) for _ in range(n)]
    return Counter(f.get("code") or f["error"] for f in frames)


async def test_frames_are_limited_per_socket(make_client: Factory) -> None:
    client = await make_client(rate_limit_socket="3 per minute")
    async with connect(client) as ws:
        for _ in range(5):
            await ws.send_json({"type": "shout"})
        assert await _kinds(ws, 5) == {"unknown frame type 'shout'": 3, "rate_limited": 2}
        assert not ws.closed


async def test_frames_are_limited_per_client_address(make_client: Factory) -> None:
    client = await make_client(rate_limit_ip="4 per minute")
    async with connect(client) as a, connect(client) as b:
        for ws in (a, b, a, b, a, b):
            await ws.send_json({"type": "shout"})
        got = await _kinds(a, 3) + await _kinds(b, 3)
    assert got == {"unknown frame type 'shout'": 4, "rate_limited": 2}


async def test_behind_a_trusted_proxy_each_customer_has_their_own_address_limit(make_client: Factory) -> None:
    # All sockets come from the proxy (127.0.0.1); the customers are told apart by X-Forwarded-For.
    client = await make_client(rate_limit_ip="4 per minute",
                               settings_overrides={"trusted_proxies": ("127.0.0.1",)})
    first = {"X-Forwarded-For": "203.0.113.7"}
    second = {"X-Forwarded-For": "198.51.100.9"}
    async with connect(client, headers=first) as a, connect(client, headers=second) as b:
        for ws in (a, b, a, b, a, b):
            await ws.send_json({"type": "shout"})
        got = await _kinds(a, 3) + await _kinds(b, 3)
    assert got == {"unknown frame type 'shout'": 6}


class GatedEngine(ScriptedEngine):
    """Answers only when the test opens the gate: turns pile up behind the first one."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def turn(self, request: web.Request) -> web.Response:
        self.entered.set()
        await self.gate.wait()
        return await super().turn(request)


async def test_the_queue_of_a_socket_is_bounded(make_client: Factory) -> None:
    engine = GatedEngine()
    async with serve_engine(engine) as engine_url:
        try:
            client = await make_client(engine_url=engine_url, queue_size=2, rate_limit_socket="100 per minute")
            async with connect(client) as ws:
                await open_session(ws)
                await ws.send_json({"type": "message", "text": "eins", "client_id": "c-1"})
                await asyncio.wait_for(engine.entered.wait(), 10)  # the worker is busy with c-1
                for i in (2, 3, 4):
                    await ws.send_json({"type": "message", "text": f"nr {i}", "client_id": f"c-{i}"})
                err = await ws.receive_json(timeout=10)
                assert err == {"type": "error", "error": "too many messages are waiting; please wait for the answers",
                               "code": "queue_full", "client_id": "c-4"}
                engine.gate.set()
                acks = []
                while len(acks) < 3:
                    f = await ws.receive_json(timeout=10)
                    if f["type"] == "ack":
                        acks.append(f["client_id"])
            assert acks == ["c-1", "c-2", "c-3"]
        finally:
            engine.gate.set()


async def test_the_token_is_never_logged(database: Database, make_client: Factory) -> None:
    client = await make_client()
    with structlog.testing.capture_logs() as events:
        async with connect(client) as ws:
            token, _ = await open_session(ws)
            async with database.session() as s:  # the next turn fails in the store
                await s.execute(text("ALTER TABLE messages RENAME TO messages_gone"))
            await ws.send_json({"type": "message", "text": "Hallo", "client_id": "c-1"})
            err = await ws.receive_json(timeout=10)
            assert err["type"] == "error" and "could not be processed" in err["error"]
        async with connect(client) as ws:
            await hello(ws, token)
    async with database.session() as s:
        await s.execute(text("ALTER TABLE messages_gone RENAME TO messages"))
    assert "webchat.turn_failed" in [e["event"] for e in events]
    assert token not in repr(events)


async def test_with_redis_the_address_limit_holds_across_gateway_processes(make_client: Factory) -> None:
    from tests.conftest import REDIS_URL, require_redis

    await require_redis()
    shared = {"redis_url": REDIS_URL, "redis_channel": f"resonanz:test:{secrets.token_hex(8)}"}
    one = await make_client(settings_overrides=shared, rate_limit_ip="4 per minute")
    two = await make_client(settings_overrides=shared, rate_limit_ip="4 per minute")
    async with connect(one) as a, connect(two) as b:
        for ws in (a, b, a, b, a, b):
            await ws.send_json({"type": "shout"})
        got = await _kinds(a, 3) + await _kinds(b, 3)
    assert got == {"unknown frame type 'shout'": 4, "rate_limited": 2}


async def test_bad_web_chat_options_stop_start_up_with_one_clear_line(make_client: Factory) -> None:
    from resonanz.config import ConfigError

    cases = [
        ({"allowed_origins": "https://shop.example"}, "allowed_origins must be a list"),
        ({"allowed_origins": ["shop.example"]}, "'shop.example' is not an origin"),
        ({"allowed_origins": ["https://shop.example/page"]}, "is not an origin"),
        ({"rate_limit_socket": "lots"}, "rate_limit_socket 'lots' is not a rate"),
        ({"session_idle_days": 0}, "session_idle_days must be a positive number"),
        ({"queue_size": "8"}, "queue_size must be a whole number"),
    ]
    for options, message in cases:
        with pytest.raises(ConfigError, match=message):
            await make_client(**options)
