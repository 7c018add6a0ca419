"""Two real engines on one PostgreSQL tracker store with Rasa's RedisLockStore (the endpoints.yml
`resonanz run` writes when Redis is configured): one conversation, served by both engines in turn
and by both at once, stays whole and in order; a turn sent again with the same message id (the
pool's retry after an engine died having stored it) is stored once. Only responses (no custom
actions) are used. The last test kills the first engine: keep it last in this module."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from aiohttp import web
from sqlalchemy import select

from bot.dispatcher import engine_sender
from bot.engine import TURN_PATH, RasaEngine
from bot.engine_process import EngineConfig, EngineProcess, LocalEngines, train
from resonanz.settings import Settings
from resonanz.store.models import Conversation, Message
from resonanz.store.vocabulary import Direction
from tests.conftest import REDIS_URL, free_port, make_database_url, migrated_database, require_redis
from tests.support.engine_script import SCRIPT

pytestmark = [pytest.mark.engine, pytest.mark.redis]


@dataclass
class SharedEngines:
    urls: list[str]
    token: str
    engines: LocalEngines


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def shared_engines(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SharedEngines]:
    await require_redis()
    tmp: Path = tmp_path_factory.mktemp("shared")
    db_url, drop = await make_database_url("postgresql", tmp)
    models_dir = Settings().models_dir
    await asyncio.to_thread(train, models_dir)
    token = secrets.token_urlsafe(16)
    engines = LocalEngines([
        EngineConfig(port=free_port(), token=token, action_url=f"http://127.0.0.1:{free_port()}/actions/webhook",
                     action_token="unused", models_dir=models_dir, var_dir=tmp, index=i,
                     database_url=db_url, redis_url=REDIS_URL)
        for i in range(2)
    ])
    try:
        await engines.start()
        await engines.wait_ready()
        yield SharedEngines(engines.urls, token, engines)
    finally:
        await engines.stop()
        await drop()


async def tracker_events(http: aiohttp.ClientSession, engine_url: str, token: str, sender: str) -> list[dict]:
    async with http.get(f"{engine_url}/conversations/{sender}/tracker", params={"token": token}) as r:
        assert r.status == 200, await r.text()
        return list((await r.json()).get("events") or [])


def assert_whole_and_in_order(events: list[dict], expected_user_turns: int) -> None:
    """Every customer message is there, and each one was answered (bot, then action_listen)
    before the next one was taken."""
    kinds = [e["event"] if e["event"] != "action" else e.get("name") for e in events]
    users = [i for i, k in enumerate(kinds) if k == "user"]
    assert len(users) == expected_user_turns, kinds
    for start, end in zip(users, [*users[1:], len(kinds)], strict=True):
        between = kinds[start + 1:end]
        assert "bot" in between and between[-1] == "action_listen", kinds


async def test_one_conversation_on_two_engines_stays_whole_and_in_order(shared_engines: SharedEngines) -> None:
    sender = "shared-" + secrets.token_hex(4)
    async with aiohttp.ClientSession() as http:
        a, b = (RasaEngine(u, shared_engines.token, timeout=60, session=http) for u in shared_engines.urls)
        # In turn: each engine continues from the turns the other one took.
        await a.turn(sender, "Wann haben Sie geöffnet?")
        await b.turn(sender, "Wie kann ich Sie erreichen?")
        # At once: the Redis lock makes one engine wait for the other.
        rounds = [("Welche Zahlungsarten gibt es?", "Wann kommt meine Rechnung?"),
                  ("Wie sind Ihre Öffnungszeiten?", "Wie kann ich Sie erreichen?"),
                  ("Welche Zahlungsarten gibt es?", "Wann haben Sie geöffnet?")]
        for first, second in rounds:
            turns = await asyncio.gather(a.turn(sender, first), b.turn(sender, second))
            assert all(t.replies for t in turns)
        for engine_url in shared_engines.urls:
            async with http.get(f"{engine_url}/conversations/{sender}/tracker",
                                params={"token": shared_engines.token}) as r:
                assert r.status == 200
                events = (await r.json())["events"]
            assert_whole_and_in_order(events, 2 + 2 * len(rounds))


async def test_a_turn_sent_again_with_its_message_id_is_stored_once(shared_engines: SharedEngines) -> None:
    """The same customer message twice, with one message id, to each engine in turn (the wire
    format of bot/engine.py, as the pool's retry sends it): the shared tracker holds it once, with
    one answer, and the second call returns the answer the first one stored."""
    sender = "again-" + secrets.token_hex(4)
    payload = {"sender": sender, "message": SCRIPT[0], "message_id": secrets.token_hex(16),
               "set_slots": {"language": "de"}, "metadata": {}}
    answers = []
    async with aiohttp.ClientSession() as http:
        for url in shared_engines.urls:
            async with http.post(url + TURN_PATH, json=payload,
                                 headers={"Authorization": f"Bearer {shared_engines.token}"}) as r:
                assert r.status == 200, await r.text()
                answers.append(await r.json())
        events = await tracker_events(http, shared_engines.urls[0], shared_engines.token, sender)
    users = [e for e in events if e["event"] == "user"]
    assert [(u["text"], u.get("message_id")) for u in users] == [(SCRIPT[0], payload["message_id"])]
    bots = [e["text"] for e in events if e["event"] == "bot"]
    assert bots and [m["text"] for m in answers[1]["messages"]] == [m["text"] for m in answers[0]["messages"]]
    assert answers[1]["parse_data"]["intent"]["name"] == answers[0]["parse_data"]["intent"]["name"]
    assert answers[1]["actions"] == answers[0]["actions"]
    assert_whole_and_in_order(events, 1)


async def test_the_same_turn_on_both_engines_at_once_is_run_once(shared_engines: SharedEngines) -> None:
    """A retry that reaches the second engine while the first still runs the turn (the first was
    only cut off): the Redis lock makes the second wait, and it then finds the first one's turn."""
    sender = "atonce-" + secrets.token_hex(4)
    payload = {"sender": sender, "message": SCRIPT[2], "message_id": secrets.token_hex(16),
               "set_slots": {"language": "de"}, "metadata": {}}
    async with aiohttp.ClientSession() as http:

        async def send(url: str) -> dict:
            async with http.post(url + TURN_PATH, json=payload,
                                 headers={"Authorization": f"Bearer {shared_engines.token}"}) as r:
                assert r.status == 200, await r.text()
                return dict(await r.json())

        first, second = await asyncio.gather(*(send(url) for url in shared_engines.urls))
        events = await tracker_events(http, shared_engines.urls[1], shared_engines.token, sender)
    assert [e["text"] for e in events if e["event"] == "user"] == [SCRIPT[2]]
    assert_whole_and_in_order(events, 1)
    answer = [e["text"] for e in events if e["event"] == "bot"]
    assert [m["text"] for m in first["messages"]] == [m["text"] for m in second["messages"]] == answer


class DyingProxy:
    """Stands between the gateway and one engine and passes everything on, until it is armed: the
    engine then takes the next turn in full (stored in the shared tracker, answered), is killed
    with SIGKILL, and the gateway's connection is cut before the answer reaches it - an engine
    that dies mid-turn after it recorded the customer's message."""

    def __init__(self, engine: EngineProcess, http: aiohttp.ClientSession) -> None:
        self.engine, self.http = engine, http
        self.armed = False
        self.killed = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.forward)
        self.runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def forward(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")}
        answer: tuple[bytes, int, str] | None = None
        if not self.killed.is_set():
            try:
                async with self.http.request(request.method, self.engine.url + request.path_qs,
                                             data=await request.read(), headers=headers) as r:
                    answer = (await r.read(), r.status, r.headers.get("Content-Type", ""))
            except aiohttp.ClientError:
                answer = None
        if answer is not None and self.armed and request.path == TURN_PATH:
            self.armed = False
            await self.engine.kill()
            self.killed.set()
            answer = None
        if answer is None:  # dead: the gateway sees its connection cut, no answer
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=502)
        body, status, content_type = answer
        return web.Response(body=body, status=status, headers={"Content-Type": content_type})


async def test_an_engine_dying_after_it_stored_the_turn_leaves_the_message_once(
    shared_engines: SharedEngines, tmp_path: Path,
) -> None:
    """The gateway's pool retries a turn on the other engine when the first one died mid-turn;
    the first had already stored the customer's message (and its answer) in the shared tracker.
    The tracker holds the message once, and the customer gets exactly one answer."""
    from resonanz.app import ENGINE, ENGINE_READY, create_app

    first, second = shared_engines.engines.processes
    gw_port = free_port()
    db_url, drop = await make_database_url("sqlite", tmp_path)
    db = await migrated_database(db_url)
    async with aiohttp.ClientSession() as http:
        proxy = DyingProxy(first, http)
        await proxy.start()
        settings = Settings(
            host="127.0.0.1", port=gw_port, DATABASE_URL=db_url, engine_urls=(proxy.url, second.url),
            engine_token=shared_engines.token, action_token="unused", engine_timeout=60.0,
            engine_startup_wait=60.0, engine_probe_seconds=0.5, var_dir=tmp_path,
        )
        app = await create_app(settings, db=db)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", gw_port).start()
        try:
            await asyncio.wait_for(app[ENGINE_READY].wait(), 60)
            pool = app[ENGINE]
            deadline = asyncio.get_running_loop().time() + 60
            while await pool.refresh() < 2:
                assert asyncio.get_running_loop().time() < deadline, "both engines never up"
                await asyncio.sleep(0.2)

            async def post(sender: str, text: str) -> dict:
                async with http.post(f"http://127.0.0.1:{gw_port}/webhooks/rest/webhook",
                                     json={"sender": sender, "message": text}) as r:
                    assert r.status == 200, await r.text()
                    return dict(await r.json())

            # A customer whose conversation the first engine (behind the proxy) owns.
            for i in range(40):
                customer = f"dying-{secrets.token_hex(3)}-{i}"
                assert (await post(customer, SCRIPT[1]))["state"] == "bot"
                async with db.session() as s:
                    conv = await s.scalar(select(Conversation).join(Message).where(Message.sender_id == customer))
                assert conv is not None
                sender = engine_sender(conv.id, conv.engine_session)
                if pool.ring.preference(sender)[0] == proxy.url:
                    break
            else:
                raise AssertionError("no conversation routed to the first engine")

            proxy.armed = True
            body = await post(customer, SCRIPT[0])
            assert proxy.killed.is_set(), "the first engine never took the turn"
            assert body["state"] == "bot", body

            events = await tracker_events(http, second.url, shared_engines.token, sender)
            users = [e["text"] for e in events if e["event"] == "user"]
            assert users == [SCRIPT[1], SCRIPT[0]], users  # the message once, not twice
            assert_whole_and_in_order(events, 2)
            kinds = [e["event"] for e in events]
            second_user = [i for i, k in enumerate(kinds) if k == "user"][1]
            stored_answer = [e["text"] for e in events[second_user:] if e["event"] == "bot"]
            # Exactly one answer reaches the customer: the one the first engine stored.
            assert [m["text"] for m in body["messages"]] == stored_answer
            async with db.session() as s:
                rows = (await s.scalars(select(Message).where(Message.conversation_id == conv.id)
                                        .order_by(Message.id))).all()
            last_in = max(i for i, m in enumerate(rows) if m.direction == Direction.IN)
            assert [m.text for m in rows[last_in + 1:] if m.direction == Direction.OUT] == stored_answer
        finally:
            await runner.cleanup()
            await proxy.runner.cleanup()
            await db.dispose()
            await drop()
