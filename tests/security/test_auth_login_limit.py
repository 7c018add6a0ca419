"""The login rate limit (issue #8 item 6): one normalised e-mail for the limiter and the lookup,
attempts reserved atomically before the password is checked, the client address taken from
X-Forwarded-For only behind a trusted proxy, a stranger unable to lock a real agent out from
one address, and one limit for every gateway process when Redis is configured."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from handover.auth import create_agent
from resonanz.store import Database
from tests.security.auth_support import PASSWORD, REDIS_URL, channel, gateway, login, require_redis

WRONG = "falsch-falsch-falsch"


async def test_spellings_of_one_email_share_one_limit(database: Database, tmp_path: Path) -> None:
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path, trusted_proxies=["127.0.0.1"], login_limit_email="3/15minutes")
        spellings = [" Anna@Example.org", "ANNA@EXAMPLE.ORG ", "\tanna@example.org\n"]
        for i, spelling in enumerate(spellings):  # each from its own address: only the e-mail limit binds
            resp = await login(gw, spelling, WRONG, **{"X-Forwarded-For": f"203.0.113.{i + 1}"})
            assert resp.status == 401, await resp.text()
        resp = await login(gw, "anna@example.org", PASSWORD, **{"X-Forwarded-For": "203.0.113.99"})
        assert resp.status == 429
        assert (await resp.json())["retry_after"] > 0


async def test_concurrent_wrong_passwords_are_not_all_checked(database: Database, tmp_path: Path) -> None:
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        answers = await asyncio.gather(*(login(gw, "anna@example.org", WRONG) for _ in range(15)))
        statuses = sorted(r.status for r in answers)
        # The limit for one address and one e-mail is 5: the other 10 are refused unchecked.
        assert statuses == [401] * 5 + [429] * 10


async def test_behind_a_trusted_proxy_a_stranger_does_not_lock_out_the_agent(database: Database, tmp_path: Path) -> None:
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path, trusted_proxies=["127.0.0.0/8"])
        stranger = {"X-Forwarded-For": "198.51.100.66, 127.0.0.1"}  # passed through two of our proxies
        for _ in range(5):
            assert (await login(gw, "anna@example.org", WRONG, **stranger)).status == 401
        assert (await login(gw, "anna@example.org", WRONG, **stranger)).status == 429
        # The real agent, behind the same proxy, logs in.
        resp = await login(gw, "anna@example.org", PASSWORD, **{"X-Forwarded-For": "192.0.2.10"})
        assert resp.status == 200, await resp.text()


async def test_without_a_trusted_proxy_forwarded_for_is_ignored(database: Database, tmp_path: Path) -> None:
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)  # no trusted proxies (the default)
        for i in range(5):
            assert (await login(gw, "anna@example.org", WRONG, **{"X-Forwarded-For": f"192.0.2.{i}"})).status == 401
        # A new forged address each time does not buy new attempts.
        assert (await login(gw, "anna@example.org", PASSWORD, **{"X-Forwarded-For": "192.0.2.200"})).status == 429


async def test_one_address_trying_many_emails_is_limited(database: Database, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path, login_limit_ip="4/15minutes")
        for i in range(4):
            assert (await login(gw, f"user{i}@example.org", WRONG)).status == 401
        assert (await login(gw, "user99@example.org", WRONG)).status == 429


async def test_a_successful_login_clears_the_agents_own_failures(database: Database, tmp_path: Path) -> None:
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        for _ in range(4):
            assert (await login(gw, "anna@example.org", WRONG)).status == 401
        assert (await login(gw, "anna@example.org", PASSWORD)).status == 200
        for _ in range(4):  # typos after a good login start from zero again
            assert (await login(gw, "anna@example.org", WRONG)).status == 401


async def test_client_ip_takes_the_rightmost_untrusted_forwarded_hop() -> None:
    from resonanz.client_ip import client_ip
    from resonanz.keys import SETTINGS
    from resonanz.settings import Settings

    async def show(request: web.Request) -> web.Response:
        return web.json_response({"ip": client_ip(request)})

    def app(trusted: list[str]) -> web.Application:
        a = web.Application()
        a[SETTINGS] = Settings(trusted_proxies=trusted)
        a.router.add_get("/ip", show)
        return a

    async def ip(client: TestClient, forwarded: str | None) -> str:
        headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
        return (await (await client.get("/ip", headers=headers)).json())["ip"]

    async with TestClient(TestServer(app(["127.0.0.1", "10.0.0.0/8"]))) as c:
        assert await ip(c, None) == "127.0.0.1"
        assert await ip(c, "203.0.113.5") == "203.0.113.5"
        # The client may send its own header; the proxies append to it: the rightmost untrusted counts.
        assert await ip(c, "1.2.3.4, 203.0.113.5, 10.1.2.3") == "203.0.113.5"
        assert await ip(c, "1.2.3.4,203.0.113.5") == "203.0.113.5"
        assert await ip(c, "2001:db8::1") == "2001:db8::1"
        assert await ip(c, "10.0.0.1, 10.0.0.2") == "10.0.0.1"  # all ours: the leftmost we know
        assert await ip(c, "not-an-address") == "127.0.0.1"  # garbage from a trusted hop: the hop itself
    async with TestClient(TestServer(app([]))) as c:
        assert await ip(c, "203.0.113.5") == "127.0.0.1"


async def test_settings_refuse_a_bad_proxy_or_limit() -> None:
    import pytest
    from pydantic import ValidationError

    from resonanz.settings import Settings

    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies=["not-a-network"])
    with pytest.raises(ValidationError, match="login_limit_ip"):
        Settings(login_limit_ip="many per day")


async def test_gateways_sharing_redis_share_one_limit(database: Database, tmp_path: Path) -> None:
    await require_redis()
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        ch = channel()
        gw_a = await gateway(stack, database, tmp_path, redis_url=REDIS_URL, redis_channel=ch)
        gw_b = await gateway(stack, database, tmp_path, redis_url=REDIS_URL, redis_channel=ch)
        for gw in (gw_a, gw_a, gw_a, gw_b, gw_b):
            assert (await login(gw, "anna@example.org", WRONG)).status == 401
        assert (await login(gw_b, "anna@example.org", PASSWORD)).status == 429
        assert (await login(gw_a, "anna@example.org", PASSWORD)).status == 429
