"""An agent's own picture (PUT/DELETE /api/v1/me/avatar): checked by its bytes (PNG, JPEG or WebP,
at most 1 MiB, square-ish), served from the gateway, carried on the agent's replies."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy import select

from bot.history import read_history
from handover.auth import create_agent, issue_api_token
from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent
from tests.conftest import free_port

PASSWORD = "ein-langes-passwort"


def picture(fmt: str, size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (30, 90, 160)).save(out, fmt)
    return out.getvalue()


def form(content: bytes, filename: str = "me.png", content_type: str = "image/png") -> FormData:
    f = FormData()
    f.add_field("image", content, filename=filename, content_type=content_type)
    return f


@pytest_asyncio.fixture(loop_scope="session")
async def client(database: Database, tmp_path) -> AsyncIterator[TestClient]:  # noqa: ANN001
    settings = Settings(DATABASE_URL=database.url, engine_url=f"http://127.0.0.1:{free_port()}", engine_startup_wait=0,
                        connectors=("rest",), var_dir=tmp_path)
    app = await create_app(settings, db=database)
    await create_agent(database, email="anna@example.org", password=PASSWORD, display_name="Anna Berg", role="admin")
    async with TestClient(TestServer(app)) as c:
        yield c


async def _headers(database: Database) -> dict[str, str]:
    async with database.session() as s:
        anna = await s.scalar(select(Agent).where(Agent.email == "anna@example.org"))
    return {"Authorization": f"Bearer {await issue_api_token(database, anna.id)}"}


async def test_an_agent_uploads_replaces_and_deletes_their_picture(client: TestClient, database: Database) -> None:
    headers = await _headers(database)
    assert (await (await client.get("/api/v1/me", headers=headers)).json())["agent"]["avatar_url"] is None
    # Accepted by its content: a JPEG sent under a misleading name and type is a JPEG.
    resp = await client.put("/api/v1/me/avatar", data=form(picture("JPEG"), "x.txt", "text/plain"), headers=headers)
    assert resp.status == 200, await resp.text()
    first = (await resp.json())["agent"]["avatar_url"]
    assert first.startswith("/media/") and first.endswith(".jpg")
    served = await client.get(first)  # from the gateway, to anyone with the URL (the customer's browser)
    assert served.status == 200 and served.headers["Content-Type"] == "image/jpeg"
    assert (await (await client.get("/api/v1/me", headers=headers)).json())["agent"]["avatar_url"] == first
    listed = (await (await client.get("/api/v1/agents", headers=headers)).json())["agents"]
    assert [a["avatar_url"] for a in listed] == [first]
    # A new picture replaces the old one; the old file is gone.
    resp = await client.put("/api/v1/me/avatar", data=form(picture("WEBP")), headers=headers)
    second = (await resp.json())["agent"]["avatar_url"]
    assert resp.status == 200 and second.endswith(".webp") and second != first
    assert (await client.get(first)).status == 404
    resp = await client.delete("/api/v1/me/avatar", headers=headers)
    assert resp.status == 200 and (await resp.json())["agent"]["avatar_url"] is None
    assert (await client.get(second)).status == 404
    assert (await (await client.get("/api/v1/me", headers=headers)).json())["agent"]["avatar_url"] is None


async def test_what_is_not_a_small_square_png_jpeg_or_webp_is_refused(client: TestClient, database: Database) -> None:
    headers = await _headers(database)
    refusals = [
        (form(b"<svg onload=alert(1)>", "me.png", "image/png"), 400, "PNG, JPEG or WebP"),  # declared PNG, is not
        (form(b"%PDF-1.7\n" + b"x" * 100, "me.pdf", "application/pdf"), 400, "PNG, JPEG or WebP"),
        (form(picture("GIF"), "me.gif", "image/gif"), 400, "PNG, JPEG or WebP"),
        (form(picture("PNG", (300, 60))), 400, "square"),
        (form(picture("PNG")[:40]), 400, "cannot be read"),  # a PNG signature, then nothing
        (form(picture("PNG") + b"\0" * (1024 * 1024)), 413, "1 MiB"),
    ]
    for body, status, says in refusals:
        resp = await client.put("/api/v1/me/avatar", data=body, headers=headers)
        assert resp.status == status, await resp.text()
        assert says in (await resp.json())["error"]
    wrong_field = FormData()
    wrong_field.add_field("file", picture("PNG"), filename="me.png", content_type="image/png")
    resp = await client.put("/api/v1/me/avatar", data=wrong_field, headers=headers)
    assert resp.status == 400 and "image" in (await resp.json())["error"]
    resp = await client.put("/api/v1/me/avatar", json={"image": "x"}, headers=headers)
    assert resp.status == 415
    assert (await (await client.get("/api/v1/me", headers=headers)).json())["agent"]["avatar_url"] is None
    assert (await client.put("/api/v1/me/avatar", data=form(picture("PNG")))).status == 401


async def test_an_agents_reply_carries_their_picture(client: TestClient, database: Database) -> None:
    headers = await _headers(database)
    url = (await (await client.put("/api/v1/me/avatar", data=form(picture("PNG")), headers=headers)).json())["agent"]["avatar_url"]
    await client.post("/webhooks/rest/webhook", json={"sender": "bild", "message": "Hallo"})  # dead engine: queued
    [h] = (await (await client.get("/api/v1/handovers?view=queue", headers=headers)).json())["handovers"]
    assert (await client.post(f"/api/v1/handovers/{h['id']}/accept", headers=headers)).status == 200
    resp = await client.post(f"/api/v1/handovers/{h['id']}/messages", json={"text": "Guten Tag"}, headers=headers)
    assert resp.status == 201, await resp.text()
    history = await read_history(database, "rest", "bild")
    [reply] = [m for m in history.messages if m.author == "agent"]
    assert (reply.sender_name, reply.sender_avatar) == ("Anna Berg", url)
    assert reply.to_outbound().sender_avatar == url
