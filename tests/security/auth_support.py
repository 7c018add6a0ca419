"""Helpers for the agent-authentication security tests: a real gateway app on port 0 with chosen
settings, an agent, and a login as the console does it."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from resonanz.store import Database
from tests.conftest import REDIS_URL, free_port, require_redis  # noqa: F401 - re-exported

PASSWORD = "ein-langes-passwort"
WAIT = 10.0  # seconds any single expected event may take


async def gateway(stack: AsyncExitStack, database: Database, tmp_path: Path, **overrides: Any) -> TestClient:
    """A started test client on a real gateway app (dead engine; the REST connector only), closed
    with `stack`. Each call gets its own connection pool, like a separate gateway process."""
    from resonanz.app import create_app
    from resonanz.settings import Settings

    db = Database(database.url)
    stack.push_async_callback(db.dispose)
    # A token for the REST channel, so that a public URL (some tests set one) is a valid set-up.
    overrides.setdefault("connector_options", {"rest": {"token": "rest-token-for-auth-tests"}})
    settings = Settings(DATABASE_URL=database.url, engine_url=f"http://127.0.0.1:{free_port()}", engine_startup_wait=0,
                        connectors=("rest",), var_dir=tmp_path / uuid.uuid4().hex, **overrides)
    client = TestClient(TestServer(await create_app(settings, db=db)))
    await client.start_server()
    stack.push_async_callback(client.close)
    return client


def channel() -> str:
    return f"resonanz:test:{uuid.uuid4().hex}"


async def login(client: TestClient, email: str, password: str = PASSWORD, **headers: str) -> aiohttp.ClientResponse:
    return await client.post("/api/v1/login", json={"email": email, "password": password}, headers=headers)


def origin(client: TestClient) -> str:
    return str(client.make_url("")).rstrip("/")


async def open_stream(client: TestClient, headers: dict[str, str]) -> aiohttp.ClientWebSocketResponse:
    """The live stream, connected *and subscribed*: the server reads our ping (and answers it)
    only after its hub subscription is in place."""
    ws = await client.ws_connect("/api/v1/stream", headers={"Origin": origin(client), **headers}, autoping=False)
    await ws.ping(b"subscribed?")
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type == WSMsgType.PONG, msg
    return ws


async def closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    """The next frame that is not an event: the server's close. Events before it are skipped."""
    while True:
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        if msg.type != WSMsgType.TEXT:
            return msg
