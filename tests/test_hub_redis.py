"""Console events across several gateway processes, over the real Redis (127.0.0.1:6379).

Two `RedisHub`s in one event loop stand for two gateway processes: an event published on one
reaches the subscribers of both exactly once and in order; what is queued when a hub closes is
still sent; a dropped connection is re-established and the consoles are told to resync; Redis
configured but unreachable stops start-up. Then two real gateway apps on one database: an
agent's /api/v1/stream on gateway B sees what happens on gateway A, and the other way round.

Each test uses its own channel, so parallel runs do not see each other. Without Redis the tests
skip — except under CI (`CI` set), where they fail. Waiting is always on a queue or a WebSocket
with a timeout (never a sleep); "no duplicates" is shown by a barrier event sent afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient

from handover.hub import Event, HubUnavailable, RedisHub
from tests.conftest import REDIS_URL, free_port
from tests.support.gateways import WAIT, agent_stream, receive_until, redis_admin, start_gateway  # noqa: F401 - the fixture

pytestmark = pytest.mark.redis


@pytest.fixture
def channel() -> str:
    return f"resonanz:test:{uuid.uuid4().hex}"


HubFactory = Callable[[], Awaitable[RedisHub]]


@pytest_asyncio.fixture(loop_scope="session")
async def make_hub(redis_admin: object, channel: str) -> AsyncIterator[HubFactory]:
    """Started hubs on this test's channel (one per simulated gateway process), closed afterwards."""
    hubs: list[RedisHub] = []

    async def make() -> RedisHub:
        hub = RedisHub(REDIS_URL, channel=channel, backoff=(0.05, 0.5))
        await hub.start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.close()


async def next_event(queue: asyncio.Queue[Event]) -> Event:
    return await asyncio.wait_for(queue.get(), WAIT)


def drained(queue: asyncio.Queue[Event]) -> list[Event]:
    return [queue.get_nowait() for _ in range(queue.qsize())]


async def barrier(a: RedisHub, qa: asyncio.Queue[Event], b: RedisHub, qb: asyncio.Queue[Event]) -> None:
    """A→B, then B→A. Redis keeps the order on each connection, so once this returns, any echo or
    duplicate of an event published earlier on A or B would have arrived before the barrier."""
    a.publish({"type": "barrier", "from": "a"})
    assert qa.get_nowait() == {"type": "barrier", "from": "a"}
    assert (await next_event(qb)) == {"type": "barrier", "from": "a"}
    b.publish({"type": "barrier", "from": "b"})
    assert qb.get_nowait() == {"type": "barrier", "from": "b"}
    assert (await next_event(qa)) == {"type": "barrier", "from": "b"}


# --- hub level --------------------------------------------------------------------------------


async def test_an_event_reaches_subscribers_of_both_processes_exactly_once(make_hub: HubFactory) -> None:
    a, b = await make_hub(), await make_hub()
    event = {"type": "handover", "handover": {"id": "h1", "status": "waiting", "offered_agent_id": None}}
    async with a.subscribe() as qa, b.subscribe() as qb:
        a.publish(event)
        assert qa.get_nowait() == event  # locally at once, without a Redis round trip
        assert (await next_event(qb)) == event
        b.publish(event)
        assert qb.get_nowait() == event
        assert (await next_event(qa)) == event
        await barrier(a, qa, b, qb)
        # Neither A's nor B's own echo came back, and nothing arrived twice.
        assert drained(qa) == [] and drained(qb) == []


async def test_a_hundred_events_arrive_in_order_on_both_sides(make_hub: HubFactory) -> None:
    a, b = await make_hub(), await make_hub()
    async with a.subscribe() as qa, b.subscribe() as qb, b.subscribe() as qb2:
        events = [{"type": "message", "conversation_id": "c1", "message": {"id": i, "text": f"Nachricht {i} – ü"}}
                  for i in range(100)]
        for e in events:
            a.publish(e)
        assert drained(qa) == events
        assert [await next_event(qb) for _ in events] == events
        assert [await next_event(qb2) for _ in events] == events
        await barrier(a, qa, b, qb)
        assert drained(qa) == [] and drained(qb) == []


async def test_both_processes_publish_at_once(make_hub: HubFactory) -> None:
    a, b = await make_hub(), await make_hub()
    async with a.subscribe() as qa, b.subscribe() as qb:
        for i in range(50):
            a.publish({"type": "message", "from": "a", "n": i})
            b.publish({"type": "message", "from": "b", "n": i})
        got_a = [await next_event(qa) for _ in range(100)]
        got_b = [await next_event(qb) for _ in range(100)]
        for got in (got_a, got_b):
            for origin in ("a", "b"):
                assert [e["n"] for e in got if e["from"] == origin] == list(range(50))
        await barrier(a, qa, b, qb)
        assert drained(qa) == [] and drained(qb) == []


async def test_close_sends_what_is_queued_and_stops_cleanly(make_hub: HubFactory, channel: str) -> None:
    b = await make_hub()
    a = RedisHub(REDIS_URL, channel=channel)
    await a.start()
    assert a.subscribers == 1  # a running bridge counts: consoles elsewhere may be listening
    async with b.subscribe() as qb:
        for i in range(20):
            a.publish({"type": "message", "n": i})
        await a.close()  # right away: the queued events still go out
        assert [(await next_event(qb))["n"] for _ in range(20)] == list(range(20))
        assert a._reader is not None and a._reader.done() and a._publisher is not None and a._publisher.done()
        assert a._redis is None and a._pubsub is None
        assert a.subscribers == 0
        await a.close()  # twice is harmless
        async with a.subscribe() as qa:  # a closed hub still serves its own process
            a.publish({"type": "after-close"})
            assert qa.get_nowait() == {"type": "after-close"}
        b.publish({"type": "barrier"})
        assert (await next_event(qb)) == {"type": "barrier"}
        assert drained(qb) == []  # "after-close" did not travel


async def test_an_overflowing_backlog_makes_the_other_processes_resync(make_hub: HubFactory, channel: str) -> None:
    b = await make_hub()
    a = RedisHub(REDIS_URL, channel=channel, max_pending=3)
    try:
        for i in range(5):  # not started yet: nothing drains the backlog, the two oldest are dropped
            a.publish({"type": "message", "n": i})
        async with b.subscribe() as qb:
            await a.start()
            got = [await next_event(qb) for _ in range(4)]
        assert got == [{"type": "resync"}, *({"type": "message", "n": i} for i in (2, 3, 4))]
    finally:
        await a.close()


async def test_a_dropped_connection_is_re_established_and_consoles_resync(make_hub: HubFactory, redis_admin) -> None:  # noqa: ANN001
    a, b = await make_hub(), await make_hub()
    async with a.subscribe() as qa, b.subscribe() as qb:
        # Redis drops every connection of process A (as on a network failure or a Redis restart).
        name = f"resonanz-hub-{a.origin[:12]}"
        killed = 0
        for client in await redis_admin.client_list():
            if client.get("name") == name:
                killed += await redis_admin.client_kill_filter(_id=client["id"])
        assert killed >= 1
        assert (await next_event(qa)) == {"type": "resync"}  # A's consoles re-fetch what they may have missed
        # Both directions work again; A's publisher reconnects on its first failed send.
        a.publish({"type": "message", "n": 1})
        assert qa.get_nowait() == {"type": "message", "n": 1}
        assert (await next_event(qb)) == {"type": "message", "n": 1}
        b.publish({"type": "message", "n": 2})
        assert qb.get_nowait() == {"type": "message", "n": 2}
        assert (await next_event(qa)) == {"type": "message", "n": 2}
        await barrier(a, qa, b, qb)
        assert drained(qa) == [] and drained(qb) == []


async def test_redis_configured_but_unreachable_stops_start_up(tmp_path: Path) -> None:
    """No Redis needed: nothing listens on the port."""
    from resonanz.app import create_app
    from resonanz.settings import Settings

    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    hub = RedisHub(url)
    with pytest.raises(HubUnavailable, match="not reachable") as err:
        await hub.start()
    assert "s3cret" not in str(err.value)
    assert hub.subscribers == 0

    settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'gw.db'}", connectors=("rest",), var_dir=tmp_path,
                        engine_url="http://127.0.0.1:9", redis_url=url)
    runner = web.AppRunner(await create_app(settings))
    with pytest.raises(HubUnavailable, match="RESONANZ_REDIS_URL"):
        await runner.setup()
    await runner.cleanup()


# --- two real gateways ------------------------------------------------------------------------


async def test_an_agent_on_gateway_b_sees_live_what_happens_on_gateway_a(
    database, redis_admin, channel: str, tmp_path: Path  # noqa: ANN001
) -> None:
    from handover.auth import create_agent, issue_api_token
    from resonanz.app import HUB
    from tests.support.scripted_engine import ScriptedEngine, serve_engine
    from tests.support.desk import PASSWORD

    async with AsyncExitStack() as stack:
        engine_url = await stack.enter_async_context(serve_engine(ScriptedEngine()))

        async def gateway(name: str) -> TestClient:
            return await start_gateway(stack, database, engine_url=engine_url, var_dir=tmp_path / name, channel=channel)

        gw_a, gw_b = await gateway("a"), await gateway("b")
        assert isinstance(gw_a.app[HUB], RedisHub) and isinstance(gw_b.app[HUB], RedisHub)

        agent = await create_agent(database, email="petra@x.de", password=PASSWORD, display_name="Petra Beispiel")
        token = await issue_api_token(database, agent.id)
        on_b = await agent_stream(gw_b, token)
        stack.push_async_callback(on_b.close)

        async def customer(text: str) -> dict:
            resp = await gw_a.post("/webhooks/rest/webhook", json={"sender": "greta", "message": text})
            assert resp.status == 200, await resp.text()
            return await resp.json()

        # A live bot conversation on A is watched from B, though no console is connected to A.
        assert gw_a.app[HUB].local_subscribers == 0
        r = await customer("Hallo")
        conv = r["conversation_id"]
        bot_turn, before = await receive_until(on_b, lambda e: e["type"] == "message" and e["message"]["author"] == "bot")
        assert bot_turn["conversation_id"] == conv and bot_turn["message"]["text"] == "bot:greet"
        assert ("customer", "Hallo") in [(e["message"]["author"], e["message"]["text"]) for e in before]

        # The customer asks for a person on A: the new handover shows on B's console.
        r = await customer("Ich will einen Menschen sprechen")
        assert r["state"] == "queued"
        opened, _ = await receive_until(on_b, lambda e: e["type"] == "handover" and e["handover"]["conversation_id"] == conv)
        assert opened["handover"]["status"] == "waiting" and opened["handover"]["reason"] == "customer_request"
        handover_id = opened["handover"]["id"]

        # The agent accepts through B; a console on A learns of it through Redis.
        on_a = await agent_stream(gw_a, token)
        stack.push_async_callback(on_a.close)
        resp = await gw_b.post(f"/api/v1/handovers/{handover_id}/accept", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200, await resp.text()
        accepted, _ = await receive_until(on_a, lambda e: e["type"] == "handover" and e["handover"]["status"] == "assigned")
        assert accepted["handover"]["id"] == handover_id
        assert accepted["handover"]["agent"]["display_name"] == "Petra Beispiel"
        accepted_b, _ = await receive_until(on_b, lambda e: e["type"] == "handover" and e["handover"]["status"] == "assigned")
        assert accepted_b["handover"]["id"] == handover_id
