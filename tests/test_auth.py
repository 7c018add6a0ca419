"""Agent authentication: argon2 hashes, cookie sessions with CSRF, bearer tokens, rate limiting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from handover.auth import LoginLimiter, create_agent, hash_password, verify_password
from resonanz.app import create_app
from resonanz.errors import Conflict, Invalid
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, AgentSession
from tests.conftest import free_port

PASSWORD = "ein-langes-passwort"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@pytest_asyncio.fixture(loop_scope="session")
async def client(database: Database, tmp_path) -> AsyncIterator[TestClient]:  # noqa: ANN001
    settings = Settings(DATABASE_URL=database.url, engine_url=f"http://127.0.0.1:{free_port()}", engine_startup_wait=0,
                        connectors=("rest",), var_dir=tmp_path)
    app = await create_app(settings, db=database)
    await create_agent(database, email="Anna@Example.org", password=PASSWORD, display_name="Anna", role="admin")
    async with TestClient(TestServer(app)) as c:
        yield c


def test_passwords_are_hashed_with_argon2() -> None:
    h = hash_password(PASSWORD)
    assert h.startswith("$argon2id$") and PASSWORD not in h
    assert verify_password(h, PASSWORD) and not verify_password(h, PASSWORD + "x")


async def test_short_password_and_duplicate_email_are_refused(database: Database) -> None:
    with pytest.raises(Invalid, match="at least 10"):
        await create_agent(database, email="b@x.de", password="kurz", display_name="B")
    await create_agent(database, email="b@x.de", password=PASSWORD, display_name="B")
    with pytest.raises(Conflict, match="exists"):
        await create_agent(database, email="B@x.de", password=PASSWORD, display_name="B")


async def test_login_sets_a_strict_http_only_cookie_and_stores_only_a_hash(client: TestClient, database: Database) -> None:
    resp = await client.post("/api/v1/login", json={"email": "anna@example.org", "password": PASSWORD})
    assert resp.status == 200
    body = await resp.json()
    cookie = resp.headers["Set-Cookie"]
    assert "rz_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    token = resp.cookies["rz_session"].value
    async with database.session() as s:
        stored = (await s.scalars(select(AgentSession.token_hash))).all()
    assert token not in stored and len(stored) == 1
    me = await client.get("/api/v1/me")
    assert (await me.json())["agent"]["email"] == "anna@example.org"
    assert body["csrf_token"]


async def test_wrong_password_and_unknown_email_get_the_same_answer(client: TestClient) -> None:
    a = await client.post("/api/v1/login", json={"email": "anna@example.org", "password": "falsch-falsch"})
    b = await client.post("/api/v1/login", json={"email": "nobody@example.org", "password": "falsch-falsch"})
    assert a.status == b.status == 401
    assert await a.json() == await b.json() == {"error": "wrong email or password"}


async def test_cookie_sessions_need_the_csrf_header_for_changes(client: TestClient) -> None:
    login = await (await client.post("/api/v1/login", json={"email": "anna@example.org", "password": PASSWORD})).json()
    resp = await client.put("/api/v1/me/status", json={"status": "online"})
    assert resp.status == 403 and await resp.json() == {"error": "CSRF token missing or wrong"}
    resp = await client.put("/api/v1/me/status", json={"status": "online"}, headers={"X-CSRF-Token": "guess"})
    assert resp.status == 403
    resp = await client.put("/api/v1/me/status", json={"status": "online"}, headers={"X-CSRF-Token": login["csrf_token"]})
    assert resp.status == 200 and (await resp.json())["agent"]["status"] == "online"


async def test_logout_ends_the_session(client: TestClient) -> None:
    login = await (await client.post("/api/v1/login", json={"email": "anna@example.org", "password": PASSWORD})).json()
    assert (await client.post("/api/v1/logout", headers={"X-CSRF-Token": login["csrf_token"]})).status == 200
    assert (await client.get("/api/v1/me")).status == 401


async def test_failed_logins_are_rate_limited(client: TestClient) -> None:
    for _ in range(5):
        assert (await client.post("/api/v1/login", json={"email": "anna@example.org", "password": "nope-nope-nope"})).status == 401
    resp = await client.post("/api/v1/login", json={"email": "anna@example.org", "password": PASSWORD})
    assert resp.status == 429  # even the right password waits now
    body = await resp.json()
    assert body["retry_after"] > 0 and "too many" in body["error"]


async def test_rate_limiter_counts_per_address_and_email_and_names_the_wait() -> None:
    limiter = LoginLimiter(Settings(login_limit_ip_email="2/1minute", login_limit_email="3/1minute"))
    assert await limiter.reserve("1.2.3.4", "a@x.de") == 0
    assert await limiter.reserve("1.2.3.4", "a@x.de") == 0
    assert 0 < await limiter.reserve("1.2.3.4", "a@x.de") <= 60
    assert await limiter.reserve("5.6.7.8", "a@x.de") == 0  # the third for this e-mail
    assert 0 < await limiter.reserve("9.9.9.9", "a@x.de") <= 60  # per e-mail too
    await limiter.succeeded("1.2.3.4", "a@x.de")
    assert await limiter.reserve("1.2.3.4", "a@x.de") == 0


async def test_bearer_tokens_need_no_csrf_and_admin_routes_need_admins(client: TestClient, database: Database) -> None:
    from handover.auth import issue_api_token

    async with database.session() as s:
        anna = await s.scalar(select(Agent).where(Agent.email == "anna@example.org"))
    token = await issue_api_token(database, anna.id)
    headers = {"Authorization": f"Bearer {token}"}
    resp = await client.post("/api/v1/agents", headers=headers, json={"email": "c@x.de", "password": PASSWORD, "display_name": "C"})
    assert resp.status == 201
    c_token = await issue_api_token(database, (await resp.json())["agent"]["id"])
    resp = await client.post("/api/v1/agents", headers={"Authorization": f"Bearer {c_token}"},
                             json={"email": "d@x.de", "password": PASSWORD, "display_name": "D"})
    assert resp.status == 403 and await resp.json() == {"error": "admins only"}
    assert (await client.get("/api/v1/me", headers={"Authorization": "Bearer rz_wrong"})).status == 401


async def test_agent_can_send_a_picture_and_only_pictures(client: TestClient, database: Database) -> None:
    from aiohttp import FormData

    from handover.auth import issue_api_token

    async with database.session() as s:
        anna = await s.scalar(select(Agent).where(Agent.email == "anna@example.org"))
    headers = {"Authorization": f"Bearer {await issue_api_token(database, anna.id)}"}
    await client.post("/webhooks/rest/webhook", json={"sender": "bild", "message": "Hallo"})  # dead engine: queued
    [h] = (await (await client.get("/api/v1/handovers?view=queue", headers=headers)).json())["handovers"]
    await client.post(f"/api/v1/handovers/{h['id']}/accept", headers=headers)
    form = FormData()
    form.add_field("text", "Hier der Zähler")
    form.add_field("image", PNG, filename="z.png", content_type="image/png")
    resp = await client.post(f"/api/v1/handovers/{h['id']}/messages", data=form, headers=headers)
    assert resp.status == 201, await resp.text()
    [att] = (await resp.json())["message"]["attachments"]
    assert att["kind"] == "image" and att["mime_type"] == "image/png"
    assert att["url"].startswith("/media/")  # no public URL set: relative, never from the Host header
    media = await client.get(att["url"])
    assert media.status == 200 and await media.read() == PNG
    out = (await (await client.get("/webhooks/rest/messages", params={"sender": "bild"})).json())["messages"]
    assert out[-1]["attachments"][0]["url"] == att["url"]
    bad = FormData()
    bad.add_field("image", b"<svg onload=alert(1)>", filename="x.svg", content_type="image/svg+xml")
    resp = await client.post(f"/api/v1/handovers/{h['id']}/messages", data=bad, headers=headers)
    assert resp.status == 400 and "PNG, JPEG, GIF or WebP" in (await resp.json())["error"]
    assert (await client.get("/media/..%2Fsecret")).status == 404
