"""Credentials end (issue #8 item 6): bearer tokens expire and can be revoked, logout with a
bearer token revokes it, sessions expire, deactivation ends everything, and the short auth cache
never accepts what was revoked or has expired."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from handover.auth import create_agent, issue_api_token
from resonanz.store import Database
from resonanz.store.models import Agent, AgentSession, utcnow
from tests.security.auth_support import PASSWORD, gateway, login

RESONANZ = str(Path(sys.executable).parent / "resonanz")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_tokens_expire_after_the_configured_days(database: Database, tmp_path: Path) -> None:
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    token = await issue_api_token(database, anna.id, days=30)
    async with database.session() as s:
        expires = (await s.get(Agent, anna.id)).api_token_expires_at
    assert timedelta(days=29, hours=23) < expires - utcnow() <= timedelta(days=30)
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        assert (await gw.get("/api/v1/me", headers=bearer(token))).status == 200
        async with database.session() as s:
            await s.execute(update(Agent).where(Agent.id == anna.id).values(api_token_expires_at=utcnow() - timedelta(seconds=1)))
        gw.app[_cache_key()].forget()  # as after any change made elsewhere: the database decides
        assert (await gw.get("/api/v1/me", headers=bearer(token))).status == 401


def _cache_key():  # noqa: ANN202
    from handover.auth import AUTH_CACHE

    return AUTH_CACHE


async def test_default_token_lifetime_is_a_setting(database: Database) -> None:
    from resonanz.settings import Settings

    assert Settings().api_token_days == 90
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    await issue_api_token(database, anna.id)
    async with database.session() as s:
        expires = (await s.get(Agent, anna.id)).api_token_expires_at
    assert timedelta(days=89) < expires - utcnow() <= timedelta(days=90)


async def test_logout_with_a_bearer_token_revokes_it_at_once(database: Database, tmp_path: Path) -> None:
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    token = await issue_api_token(database, anna.id)
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        assert (await gw.get("/api/v1/me", headers=bearer(token))).status == 200  # now in the auth cache
        assert (await gw.post("/api/v1/logout", headers=bearer(token))).status == 200
        assert (await gw.get("/api/v1/me", headers=bearer(token))).status == 401
    async with database.session() as s:
        assert (await s.get(Agent, anna.id)).api_token_hash is None


async def test_an_expired_session_is_refused_even_when_cached(database: Database, tmp_path: Path) -> None:
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        assert (await login(gw, "anna@example.org")).status == 200
        assert (await gw.get("/api/v1/me")).status == 200  # cached
        async with database.session() as s:
            await s.execute(update(AgentSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        gw.app[_cache_key()].forget()
        assert (await gw.get("/api/v1/me")).status == 401
        assert (await login(gw, "anna@example.org")).status == 200
    async with database.session() as s:  # the next login dropped the ended session
        assert len((await s.scalars(select(AgentSession))).all()) == 1


def test_the_cache_refuses_an_entry_past_its_credentials_expiry() -> None:
    from handover.auth import AuthCache

    cache = AuthCache(seconds=60)
    agent = Agent(id="a1", email="a@x.de", display_name="A", password_hash="x", role="agent", active=True)
    cache.remember("b:old", agent, None, utcnow() - timedelta(seconds=1))
    cache.remember("b:new", agent, None, utcnow() + timedelta(hours=1))
    assert cache.get("b:old") is None
    assert cache.get("b:new") is not None


async def test_session_lifetime_is_a_setting(database: Database, tmp_path: Path) -> None:
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path, session_hours=2)
        resp = await login(gw, "anna@example.org")
        assert resp.status == 200
        assert f"Max-Age={2 * 3600}" in resp.headers["Set-Cookie"]
    async with database.session() as s:
        sess = await s.scalar(select(AgentSession))
    assert timedelta(hours=1, minutes=59) < sess.expires_at - utcnow() <= timedelta(hours=2)


async def test_deactivating_an_agent_ends_its_sessions_and_token(database: Database, tmp_path: Path) -> None:
    admin = await create_agent(database, email="admin@example.org", password=PASSWORD, display_name="Admin", role="admin")
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    admin_h, anna_h = bearer(await issue_api_token(database, admin.id)), bearer(await issue_api_token(database, anna.id))
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        assert (await login(gw, "anna@example.org")).status == 200
        assert (await gw.get("/api/v1/me", headers=anna_h)).status == 200
        resp = await gw.patch(f"/api/v1/agents/{anna.id}", json={"active": False}, headers=admin_h)
        assert resp.status == 200, await resp.text()
        assert (await gw.get("/api/v1/me", headers=anna_h)).status == 401
        assert (await gw.get("/api/v1/me")).status == 401  # her console session
        # Switching her back on does not bring the old credentials back.
        assert (await gw.patch(f"/api/v1/agents/{anna.id}", json={"active": True}, headers=admin_h)).status == 200
        assert (await gw.get("/api/v1/me", headers=anna_h)).status == 401
    async with database.session() as s:
        assert await s.scalar(select(AgentSession).where(AgentSession.agent_id == anna.id)) is None


async def test_an_admin_revokes_an_agents_credentials(database: Database, tmp_path: Path) -> None:
    admin = await create_agent(database, email="admin@example.org", password=PASSWORD, display_name="Admin", role="admin")
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    admin_h, anna_h = bearer(await issue_api_token(database, admin.id)), bearer(await issue_api_token(database, anna.id))
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        assert (await gw.get("/api/v1/me", headers=anna_h)).status == 200
        assert (await gw.post(f"/api/v1/agents/{anna.id}/revoke-credentials", headers=anna_h)).status == 403
        resp = await gw.post(f"/api/v1/agents/{anna.id}/revoke-credentials", headers=admin_h)
        assert resp.status == 200, await resp.text()
        assert (await gw.get("/api/v1/me", headers=anna_h)).status == 401
        assert (await gw.get("/api/v1/me", headers=admin_h)).status == 200
        assert (await gw.post("/api/v1/agents/nope/revoke-credentials", headers=admin_h)).status == 404


def _cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "RESONANZ_VAR_DIR": str(tmp_path / "var")}
    env.pop("RESONANZ_REDIS_URL", None)
    return subprocess.run([RESONANZ, "agent", *args], env=env, capture_output=True, text=True, timeout=120)


async def test_the_cli_issues_expiring_tokens_and_revokes_them(database: Database, tmp_path: Path) -> None:
    anna = await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna")
    done = _cli(tmp_path, database.url, "token", "--email", " Anna@Example.org ", "--days", "7")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    async with database.session() as s:
        expires = (await s.get(Agent, anna.id)).api_token_expires_at
    assert timedelta(days=6, hours=23) < expires - utcnow() <= timedelta(days=7)
    async with AsyncExitStack() as stack:
        gw = await gateway(stack, database, tmp_path)
        assert (await gw.get("/api/v1/me", headers=bearer(token))).status == 200
        assert (await login(gw, "anna@example.org")).status == 200
        done = _cli(tmp_path, database.url, "revoke", "--email", "anna@example.org")
        assert done.returncode == 0, done.stderr
        gw.app[_cache_key()].forget()  # no Redis here: another process's cache lives out its seconds
        assert (await gw.get("/api/v1/me", headers=bearer(token))).status == 401
        assert (await gw.get("/api/v1/me")).status == 401
    assert _cli(tmp_path, database.url, "token", "--email", "anna@example.org", "--days", "0").returncode != 0
