"""Several real gateway apps in one test, sharing one database and the real Redis: the
`redis_admin` fixture, the gateways themselves, and an agent's live stream on one of them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest_asyncio
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from resonanz.store import Database
from tests.conftest import REDIS_URL, require_redis

WAIT = 10.0  # seconds any single expected event may take


@pytest_asyncio.fixture(loop_scope="session")
async def redis_admin() -> AsyncIterator[object]:
    """A plain client on the test Redis (skips, or fails under CI, when there is none)."""
    from redis.asyncio import Redis

    await require_redis()
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    yield client
    await client.aclose()


async def start_gateway(stack: AsyncExitStack, database: Database, *, engine_url: str, var_dir: Path,
                        channel: str, connectors: Sequence[str] = ("rest",)) -> TestClient:
    """One gateway process's app (its own connection pool) on the shared database and Redis,
    closed with `stack`."""
    from resonanz.app import create_app
    from resonanz.settings import Settings

    db = Database(database.url)
    stack.push_async_callback(db.dispose)
    settings = Settings(DATABASE_URL=database.url, engine_url=engine_url, connectors=tuple(connectors),
                        var_dir=var_dir, offer_timeout=30, redis_url=REDIS_URL, redis_channel=channel)
    client = TestClient(TestServer(await create_app(settings, db=db)))
    await client.start_server()
    stack.push_async_callback(client.close)
    return client


async def receive_until(ws: aiohttp.ClientWebSocketResponse, want: Callable[[dict], bool]) -> tuple[dict, list[dict]]:
    """Read JSON frames until one matches; returns it and everything read before it."""
    seen: list[dict] = []
    while True:
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        assert msg.type == WSMsgType.TEXT, msg
        event = msg.json()
        if want(event):
            return event, seen
        seen.append(event)


async def agent_stream(client: TestClient, token: str) -> aiohttp.ClientWebSocketResponse:
    """An agent's live stream, connected *and subscribed*: the server reads our ping (and answers
    it) only after its hub subscription is in place."""
    ws = await client.ws_connect("/api/v1/stream", headers={"Authorization": f"Bearer {token}"}, autoping=False)
    await ws.ping(b"subscribed?")
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type == WSMsgType.PONG, msg
    return ws
