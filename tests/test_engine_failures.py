"""How the gateway treats an engine that answers badly: the engine client against a local fake
engine (an aiohttp app speaking the wire format), and the dispatcher's reaction end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.engine import TURN_PATH, EngineError, RasaEngine
from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import ConversationEvent, Message

GOOD = {
    "messages": [{"text": "Hallo!"}],
    "parse_data": {"intent": {"name": "greet", "confidence": 0.98}, "entities": []},
    "slots": {"language": "de"},
    "active_loop": None,
}


class FakeEngine:
    """Answers each turn as `mode` says; records the requests it got."""

    def __init__(self) -> None:
        self.mode = "good"
        self.requests: list[dict] = []
        self.release = asyncio.Event()

    async def turn(self, request: web.Request) -> web.Response:
        self.requests.append({"auth": request.headers.get("Authorization"), **(await request.json())})
        if self.mode == "empty":
            return web.json_response({**GOOD, "messages": []})
        if self.mode == "error":
            return web.json_response({"error": "boom"}, status=500)
        if self.mode == "garbage":
            return web.Response(text="<html>proxy error</html>", content_type="text/html")
        if self.mode == "slow":
            await self.release.wait()  # never answers within the client's timeout
        return web.json_response(GOOD)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"model_file": "resonanz.tar.gz"})


@pytest_asyncio.fixture(loop_scope="session")
async def fake_engine() -> AsyncIterator[tuple[FakeEngine, str]]:
    fake = FakeEngine()
    app = web.Application()
    app.router.add_post(TURN_PATH, fake.turn)
    app.router.add_get("/status", fake.status)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    fake.release.set()
    await server.close()


@pytest.mark.parametrize(("mode", "reason"), [("empty", "engine_empty_reply"), ("error", "engine_error"), ("garbage", "engine_error"), ("slow", "engine_timeout")])
async def test_engine_client_turns_bad_answers_into_errors(fake_engine, mode: str, reason: str) -> None:  # noqa: ANN001
    fake, url = fake_engine
    fake.mode = mode
    async with aiohttp.ClientSession() as http:
        engine = RasaEngine(url, "tok", timeout=0.5, session=http)
        with pytest.raises(EngineError) as err:
            await engine.turn("s-0", "hallo")
    assert err.value.reason == reason


async def test_engine_client_sends_token_slots_and_metadata(fake_engine) -> None:  # noqa: ANN001
    fake, url = fake_engine
    async with aiohttp.ClientSession() as http:
        engine = RasaEngine(url, "tok", timeout=2, session=http)
        turn = await engine.turn("c-1", "hallo", set_slots={"language": "de"}, metadata={"conversation_id": "c"},
                                 message_id="m-1")
        assert await engine.is_ready()
    assert turn.intent == "greet" and turn.replies[0].text == "Hallo!"
    assert fake.requests[-1] == {"auth": "Bearer tok", "sender": "c-1", "message": "hallo", "message_id": "m-1",
                                 "set_slots": {"language": "de"}, "metadata": {"conversation_id": "c"}}


async def test_unreachable_engine_is_not_ready() -> None:
    async with aiohttp.ClientSession() as http:
        from tests.conftest import free_port

        assert not await RasaEngine(f"http://127.0.0.1:{free_port()}", "t", timeout=1, session=http).is_ready()


@pytest.mark.parametrize("mode", ["empty", "slow"])
async def test_dispatcher_apologises_and_queues_when_the_engine_fails(
    fake_engine, database: Database, mode: str  # noqa: ANN001
) -> None:
    fake, url = fake_engine
    settings = Settings(DATABASE_URL=database.url, engine_url=url, engine_timeout=0.5, connectors=("rest",))
    app = await create_app(settings, db=database)
    async with TestClient(TestServer(app)) as client:
        fake.mode = "good"
        ok = await (await client.post("/webhooks/rest/webhook", json={"sender": "x", "message": "Hallo"})).json()
        assert ok["state"] == "bot" and ok["messages"][0] == {"text": "Hallo!"}
        # A new conversation offers self-service or a person.
        assert [b["payload"] for b in ok["messages"][1]["buttons"]] == ["/continue_with_bot", "/request_human", "/prefer_human"]
        fake.mode = mode
        resp = await client.post("/webhooks/rest/webhook", json={"sender": "x", "message": "Zählerstand melden"})
        body = await resp.json()
    assert resp.status == 200 and body["state"] == "queued"
    assert "Entschuldigung" in body["messages"][0]["text"]
    async with database.session() as s:
        inbound = (await s.scalars(select(Message).where(Message.direction == "in").order_by(Message.id))).all()
        assert [m.text for m in inbound] == ["Hallo", "Zählerstand melden"]
        assert inbound[1].parse_data == {"error": "engine_empty_reply" if mode == "empty" else "engine_timeout"}
        [event] = (await s.scalars(select(ConversationEvent))).all()
        assert (event.to_state, event.reason) == ("queued", "engine_unavailable")
