"""Files from the web chat customer (POST /webchat/upload): only with the session's token and from
an allowed page, pictures and PDFs checked by their content, within the size limit; a stored file
becomes a message of the conversation that every tab of the session sees. No engine here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from tests.conftest import free_port
from tests.support.webchat_client import connect, open_session, own_origin

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


@pytest_asyncio.fixture(loop_scope="session")
async def client(database: Database, tmp_path) -> AsyncIterator[TestClient]:  # noqa: ANN001
    settings = Settings(
        DATABASE_URL=database.url, engine_url=f"http://127.0.0.1:{free_port()}", engine_startup_wait=0,
        connectors=("webchat",), var_dir=tmp_path,
        connector_options={"webchat": {"max_upload_bytes": 1000, "allowed_origins": ["https://shop.example"]}},
    )
    app = await create_app(settings, db=database)
    async with TestClient(TestServer(app)) as c:
        yield c


def form(content: bytes, name: str = "f.bin") -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("client_id", "up-1")
    data.add_field("file", content, filename=name, content_type="application/pdf")
    return data


async def test_uploads_are_checked_and_reach_every_tab(client: TestClient) -> None:
    async with connect(client) as ws, connect(client) as tab2:
        token, _ = await open_session(ws)
        await tab2.send_json({"type": "hello", "token": token, "language": "de"})
        await tab2.receive_json(timeout=10)
        auth, origin = {"Authorization": f"Bearer {token}"}, own_origin(client)

        async def post(data: aiohttp.FormData, headers: dict[str, str]) -> tuple[int, dict]:
            async with client.post("/webchat/upload", data=data, headers=headers) as r:
                return r.status, await r.json()

        assert (await post(form(PNG), {"Origin": origin}))[0] == 401  # no token
        assert (await post(form(PNG), {"Origin": origin, "Authorization": "Bearer nope"}))[0] == 401
        assert (await post(form(PNG), {**auth, "Origin": "https://evil.example"}))[0] == 403
        status, body = await post(form(b"<html><script>alert(1)</script></html>", "x.pdf"), {**auth, "Origin": origin})
        assert (status, body["code"]) == (415, "unsupported")
        status, body = await post(form(b"%PDF-1.4\n" + b"0" * 1000, "big.pdf"), {**auth, "Origin": origin})
        assert (status, body["code"]) == (413, "too_large")
        async with client.options("/webchat/upload", headers={"Origin": "https://shop.example"}) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
            assert "Authorization" in r.headers["Access-Control-Allow-Headers"]

        status, body = await post(form(PNG, "zaehler.png"), {**auth, "Origin": "https://shop.example"})
        assert status == 201 and body["message_id"]
        frames = []
        while not any(f.get("author") == "customer" for f in frames):
            frames.append(await tab2.receive_json(timeout=10))
        mine = next(f for f in frames if f.get("author") == "customer")
        assert mine["id"] == body["message_id"]
        [attachment] = mine["attachments"]
        assert attachment["kind"] == "image" and attachment["mime_type"] == "image/png"
        assert attachment["name"] == "zaehler.png" and attachment["url"].startswith("/media/in-")
    async with client.get(attachment["url"]) as r:
        assert r.status == 401  # a customer's file is for the team only
