"""The console stream (issue #8 item 6): /api/v1/stream checks Origin on the upgrade and is closed
by the server when its credential ends — logout, token revocation, deactivation, session expiry —
in this process at once and in the other gateway processes through the Redis hub."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSMsgType
from sqlalchemy import update

from handover.auth import create_agent, issue_api_token
from resonanz.store import Database
from resonanz.store.models import AgentSession, utcnow
from tests.security.auth_support import (PASSWORD, REDIS_URL, WAIT, channel, closed_by_server, gateway, login,
                                         open_stream, origin, require_redis)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _session(gw) -> str:  # noqa: ANN001
    resp = await login(gw, "anna@example.org")
    assert resp.status == 200, await resp.text()
    return (await resp.json())["csrf_token"]


async def test_the_stream_refuses_a_foreign_origin(database: Database, tmp_path: Path) -> None:
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        await _session(gw)
        for bad in ("https://evil.example", "null", origin(gw).replace("127.0.0.1", "localhost")):
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await gw.ws_connect("/api/v1/stream", headers={"Origin": bad})
            assert err.value.status == 403
        # A cookie session must come from a page: no Origin at all is refused too.
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await gw.ws_connect("/api/v1/stream")
        assert err.value.status == 403
        ws = await open_stream(gw, {})
        await ws.close()


async def test_behind_a_public_url_only_that_origin_is_accepted(database: Database, tmp_path: Path) -> None:
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    token = await issue_api_token(database, anna.id)
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path, public_url="https://support.example.org")
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await gw.ws_connect("/api/v1/stream", headers={**bearer(token), "Origin": origin(gw)})
        assert err.value.status == 403
        ws = await gw.ws_connect("/api/v1/stream", headers={**bearer(token), "Origin": "https://support.example.org"})
        await ws.close()
        # An API client (no browser, no cookie) sends no Origin: its bearer token is enough.
        ws = await gw.ws_connect("/api/v1/stream", headers=bearer(token))
        await ws.close()


async def test_logout_closes_the_sessions_stream(database: Database, tmp_path: Path) -> None:
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        csrf = await _session(gw)
        ws = await open_stream(gw, {})
        assert (await gw.post("/api/v1/logout", headers={"X-CSRF-Token": csrf})).status == 200
        msg = await closed_by_server(ws)
        assert msg.type == WSMsgType.CLOSE and msg.data == aiohttp.WSCloseCode.POLICY_VIOLATION


async def test_bearer_logout_closes_only_that_tokens_stream(database: Database, tmp_path: Path) -> None:
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    token = await issue_api_token(database, anna.id)
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        await _session(gw)
        console = await open_stream(gw, {})
        api = await open_stream(gw, bearer(token))
        assert (await gw.post("/api/v1/logout", headers=bearer(token))).status == 200
        assert (await closed_by_server(api)).type == WSMsgType.CLOSE
        # Her console session stays: it still answers.
        await console.ping(b"still there?")
        assert (await asyncio.wait_for(console.receive(), WAIT)).type == WSMsgType.PONG
        await console.close()


async def test_deactivation_closes_the_agents_streams(database: Database, tmp_path: Path) -> None:
    admin = await create_agent(database, email="admin@example.org", password=PASSWORD, display_name="Admin", role="admin")
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    admin_h = bearer(await issue_api_token(database, admin.id))
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        await _session(gw)
        ws = await open_stream(gw, {})
        resp = await gw.patch(f"/api/v1/agents/{anna.id}", json={"active": False}, headers=admin_h)
        assert resp.status == 200
        assert (await closed_by_server(ws)).type == WSMsgType.CLOSE


async def test_the_stream_ends_when_the_session_expires(database: Database, tmp_path: Path) -> None:
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        await _session(gw)
        async with database.session() as s:  # a session about to end
            await s.execute(update(AgentSession).values(expires_at=utcnow() + timedelta(seconds=1)))
        ws = await open_stream(gw, {})
        assert (await closed_by_server(ws)).type == WSMsgType.CLOSE


async def test_logout_on_one_gateway_closes_the_stream_and_cache_on_another(database: Database, tmp_path: Path) -> None:
    await require_redis()
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    token = await issue_api_token(database, anna.id)
    async with AsyncExitStack() as stack:
        ch = channel()
        gw_a = await gateway(stack, database, tmp_path, redis_url=REDIS_URL, redis_channel=ch)
        gw_b = await gateway(stack, database, tmp_path, redis_url=REDIS_URL, redis_channel=ch)
        assert (await gw_b.get("/api/v1/me", headers=bearer(token))).status == 200  # in B's cache now
        on_b = await open_stream(gw_b, bearer(token))
        assert (await gw_a.post("/api/v1/logout", headers=bearer(token))).status == 200
        assert (await closed_by_server(on_b)).type == WSMsgType.CLOSE
        # B heard of it (its stream closed); its cache forgot the token with that same event.
        assert (await gw_b.get("/api/v1/me", headers=bearer(token))).status == 401
