"""The web chat's WebSocket protocol: hello/history, acks, de-duplication, several tabs, and
precise error frames for bad input. The gateway here has no engine, so every message takes the
"engine unavailable" path (an apology from the system) — enough to test the channel itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from tests.conftest import free_port
from tests.support.webchat_client import connect, hello, open_session, until_ack


@pytest_asyncio.fixture(loop_scope="session")
async def client(database: Database) -> AsyncIterator[TestClient]:
    settings = Settings(
        DATABASE_URL=database.url,
        engine_url=f"http://127.0.0.1:{free_port()}",
        engine_startup_wait=0,
        connectors=("webchat",),
    )
    app = await create_app(settings, db=database)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_history_is_empty_for_a_new_session(client: TestClient) -> None:
    async with connect(client) as ws:
        _token, history = await open_session(ws)
    welcome = history.pop("welcome")
    assert history == {"type": "history", "conversation_id": None, "state": None, "language": None,
                       "extensions": ["continue.js"], "max_upload_bytes": 5_000_000, "messages": []}
    assert welcome["text"] and isinstance(welcome["tasks"], list)  # the greeting shown on open


async def test_message_is_acknowledged_and_replies_reach_every_tab(client: TestClient) -> None:
    async with connect(client) as tab1, connect(client) as tab2:
        session, _ = await open_session(tab1)
        await hello(tab2, session)
        await tab1.send_json({"type": "message", "text": "Hallo", "client_id": "c-1"})
        frames1 = await until_ack(tab1)
        frames2 = [await tab2.receive_json(timeout=10), await tab2.receive_json(timeout=10)]
    ack = frames1[-1]
    assert ack["client_id"] == "c-1" and ack["state"] == "queued" and ack["duplicate"] is False
    replies1 = [f for f in frames1 if f["type"] == "message"]
    assert [r["author"] for r in replies1] == ["system", "system"]
    assert "Entschuldigung" in replies1[0]["text"] and "Position 1" in replies1[1]["text"]
    assert frames2 == replies1  # the second tab got the same messages


async def test_resend_with_the_same_client_id_is_stored_once_and_history_reloads(client: TestClient) -> None:
    async with connect(client) as ws:
        session, _ = await open_session(ws)
        await ws.send_json({"type": "message", "text": "Hallo", "client_id": "same"})
        await until_ack(ws)
        await ws.send_json({"type": "message", "text": "Hallo", "client_id": "same"})
        ack = await ws.receive_json(timeout=10)
        assert ack["type"] == "ack" and ack["duplicate"] is True
    async with connect(client) as ws:  # a page reload
        history = await hello(ws, session)
    assert [(m["direction"], m["author"]) for m in history["messages"]] == [("in", "customer"), ("out", "system"), ("out", "system")]
    assert history["messages"][0]["text"] == "Hallo" and history["state"] == "queued"


async def test_bad_frames_get_precise_errors_and_the_socket_stays_open(client: TestClient) -> None:
    async with connect(client) as ws:
        await ws.send_json({"type": "message", "text": "hi"})
        assert (await ws.receive_json(timeout=10))["error"] == "say hello before sending messages"
        await ws.send_str("{nope")
        assert (await ws.receive_json(timeout=10))["error"] == "frame is not valid JSON"
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive_json(timeout=10))["error"] == "binary frames are not supported"
        await open_session(ws)
        cases = [
            ({"type": "shout"}, "unknown frame type 'shout'"),
            ({"type": "message", "text": "  "}, "field 'text' is missing or empty"),
            ({"type": "message", "text": 5}, "field 'text' is missing or empty"),
            ({"type": "message", "text": "x" * 4097}, "field 'text' is longer than 4096 characters"),
            ({"type": "message", "text": "hi", "client_id": "c" * 65}, "field 'client_id' must be a string of 1-64 characters"),
            ({"type": "message", "text": "hi", "display": 3}, "field 'display' must be a string"),
        ]
        for frame, error in cases:
            await ws.send_json(frame)
            got = await ws.receive_json(timeout=10)
            assert got["type"] == "error" and got["error"] == error
        assert not ws.closed


async def test_page_and_widget_are_served_with_a_strict_policy(client: TestClient) -> None:
    resp = await client.get("/chat")
    assert resp.status == 200
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    page = await resp.text()
    assert '<script src="/webchat/widget.js"' in page
    assert "<title>Stadtwerke – Kundenservice</title>" in page  # the bot's name: resonanz.yml, not the framework
    js = await client.get("/webchat/widget.js")
    assert js.status == 200 and "javascript" in js.headers["Content-Type"]
    assert "innerHTML" not in await js.text()  # customer text is only ever set as text
