"""Web chat across gateway processes, over the real Redis (127.0.0.1:6379): two real gateway apps
on one database. A customer's socket on gateway A and an agent on gateway B talk in real time;
every socket of the session gets each frame exactly once, whichever gateway holds it and
whichever emitted the frame; a socket whose gateway lost Redis gets the history again. Then the
relay alone (connectors/webchat/relay.py): order, no own echo, a resync for what overflowed.

Each test uses its own channel prefix. Without Redis the tests skip — except under CI (`CI` set),
where they fail. Waiting is always on a WebSocket with a timeout (never a sleep); "exactly once"
is shown by a barrier message emitted on the other gateway afterwards (see `_barrier_order`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient

from tests.support.gateways import agent_stream, receive_until, redis_admin, start_gateway  # noqa: F401 - the fixture
from tests.support.webchat_client import connect, hello, open_session, until_ack

pytestmark = pytest.mark.redis


@dataclass
class TwoGateways:
    a: TestClient
    b: TestClient
    token: str  # the agent's API token (valid on both)
    stack: AsyncExitStack

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def reply(self, gw: TestClient, handover_id: str, text: str) -> dict:
        resp = await gw.post(f"/api/v1/handovers/{handover_id}/messages", json={"text": text}, headers=self.auth())
        assert resp.status == 201, await resp.text()
        return (await resp.json())["message"]

    async def socket(self, gw: TestClient) -> aiohttp.ClientWebSocketResponse:
        return await self.stack.enter_async_context(connect(gw))


@pytest_asyncio.fixture(loop_scope="session")
async def gateways(database, redis_admin, tmp_path: Path) -> AsyncIterator[TwoGateways]:  # noqa: ANN001
    from handover.auth import create_agent, issue_api_token
    from tests.support.desk import PASSWORD
    from tests.support.scripted_engine import ScriptedEngine, serve_engine

    channel = f"resonanz:test:{uuid.uuid4().hex}"
    async with AsyncExitStack() as stack:
        engine_url = await stack.enter_async_context(serve_engine(ScriptedEngine()))
        a, b = [await start_gateway(stack, database, engine_url=engine_url, var_dir=tmp_path / name, channel=channel,
                                    connectors=("webchat",)) for name in ("a", "b")]
        agent = await create_agent(database, email="petra@x.de", password=PASSWORD, display_name="Petra Beispiel")
        yield TwoGateways(a, b, await issue_api_token(database, agent.id), stack)


async def _ask_for_a_person(gw: TwoGateways, ws: aiohttp.ClientWebSocketResponse) -> tuple[str, str]:
    """The customer on `ws` asks for a person; the agent accepts on B. Returns (handover id,
    conversation id)."""
    on_b = await agent_stream(gw.b, gw.token)
    gw.stack.push_async_callback(on_b.close)
    await ws.send_json({"type": "message", "text": "Ich will einen Menschen sprechen", "client_id": "c1"})
    frames = await until_ack(ws)
    assert frames[-1]["state"] == "queued", frames
    conversation_id = frames[-1]["conversation_id"]
    opened, _ = await receive_until(on_b, lambda e: e["type"] == "handover" and e["handover"]["conversation_id"] == conversation_id)
    handover_id = opened["handover"]["id"]
    resp = await gw.b.post(f"/api/v1/handovers/{handover_id}/accept", headers=gw.auth())
    assert resp.status == 200, await resp.text()
    return handover_id, conversation_id


async def test_a_customer_on_gateway_a_and_an_agent_on_gateway_b_talk_in_real_time(gateways: TwoGateways) -> None:
    gw = gateways
    customer = await gw.socket(gw.a)
    await open_session(customer)
    handover_id, conversation_id = await _ask_for_a_person(gw, customer)

    # The agent's reply is emitted on B; the customer's socket is on A.
    sent = await gw.reply(gw.b, handover_id, "Guten Tag, hier ist Petra.")
    pushed, before = await receive_until(customer, lambda f: f["type"] == "message" and f["author"] == "agent")
    assert pushed["id"] == sent["id"] and pushed["text"] == "Guten Tag, hier ist Petra."
    assert all(f["type"] == "message" for f in before), before  # e.g. the notice that a person took over

    # The customer writes on A; the agent's stream on B shows it.
    on_b = await agent_stream(gw.b, gw.token)
    gw.stack.push_async_callback(on_b.close)
    await customer.send_json({"type": "message", "text": "Mein Strom ist weg", "client_id": "c2"})
    ack = (await until_ack(customer))[-1]
    assert ack["state"] == "agent" and ack["conversation_id"] == conversation_id
    seen, _ = await receive_until(on_b, lambda e: e["type"] == "message" and e["message"]["author"] == "customer")
    assert seen["conversation_id"] == conversation_id and seen["message"]["text"] == "Mein Strom ist weg"


async def _barrier_order(gw: TwoGateways, handover_id: str, tabs: list[aiohttp.ClientWebSocketResponse]) -> None:
    """Replies emitted alternately on B and A. Each reply is read on every tab before the next is
    emitted on the other gateway, and Redis delivers in the order it received the publications:
    so a duplicate (a local copy plus an echo, or two copies through Redis) of a reply would
    arrive on a tab before the next reply. Every tab gets exactly the replies, in order."""
    texts = [f"Antwort {i}" for i in range(4)]
    for i, text in enumerate(texts):
        sent = await gw.reply(gw.b if i % 2 == 0 else gw.a, handover_id, text)
        for tab in tabs:
            frame, before = await receive_until(tab, lambda f: f["type"] == "message" and f["author"] == "agent")
            assert (frame["id"], frame["text"]) == (sent["id"], text)
            assert before == [], before  # nothing twice, nothing else in between


async def test_every_socket_of_a_session_gets_each_frame_once_on_either_gateway(gateways: TwoGateways) -> None:
    gw = gateways
    tab_a = await gw.socket(gw.a)
    token, _ = await open_session(tab_a)
    handover_id, _ = await _ask_for_a_person(gw, tab_a)
    await gw.reply(gw.b, handover_id, "Hallo")
    first, _ = await receive_until(tab_a, lambda f: f["type"] == "message" and f["author"] == "agent")
    # Two more tabs of the same session: one more on A, one on B (a socket that is local to the
    # emitting gateway AND subscribed to the session's channel there).
    tab_a2, tab_b = await gw.socket(gw.a), await gw.socket(gw.b)
    for tab in (tab_a2, tab_b):
        history = await hello(tab, token)
        assert history["type"] == "history" and first["id"] in [m["id"] for m in history["messages"]]
    await _barrier_order(gw, handover_id, [tab_a, tab_a2, tab_b])

    # The tab on B closes; B no longer needs the session's frames, A's tabs still get them.
    await tab_b.close()
    await _barrier_order(gw, handover_id, [tab_a, tab_a2])


async def test_a_socket_whose_gateway_lost_redis_gets_the_history_again(gateways: TwoGateways, redis_admin) -> None:  # noqa: ANN001
    from resonanz.app import CONNECTORS

    gw = gateways
    customer = await gw.socket(gw.a)
    await open_session(customer)
    handover_id, _ = await _ask_for_a_person(gw, customer)
    await gw.reply(gw.b, handover_id, "Hallo")
    first, _ = await receive_until(customer, lambda f: f["type"] == "message" and f["author"] == "agent")

    # Redis drops every connection of A's relay (as on a network failure or a Redis restart).
    relay = gw.a.app[CONNECTORS]["webchat"].relay
    killed = 0
    for client in await redis_admin.client_list():
        if client.get("name") == f"resonanz-webchat-{relay.origin[:12]}":
            killed += await redis_admin.client_kill_filter(_id=client["id"])
    assert killed >= 1
    # Once A's relay is subscribed again, the socket gets the history (what it may have missed).
    history, _ = await receive_until(customer, lambda f: f["type"] == "history")
    assert history["state"] == "agent" and first["id"] in [m["id"] for m in history["messages"]]
    # Live frames flow again, once each.
    await _barrier_order(gw, handover_id, [customer])


# --- the relay alone --------------------------------------------------------------------------


class Recorder:
    """A relay's connector side: what reached its sockets, and which sessions it had to resync."""

    def __init__(self) -> None:
        import asyncio

        self.frames: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        self.resynced: asyncio.Queue[list[str]] = asyncio.Queue()

    async def deliver(self, session_id: str, frame: dict) -> None:
        self.frames.put_nowait((session_id, frame))

    async def resync(self, session_ids) -> None:  # noqa: ANN001
        self.resynced.put_nowait(sorted(session_ids))


async def test_relays_pass_frames_in_order_skip_their_own_echo_and_resync_what_overflowed(redis_admin) -> None:  # noqa: ANN001
    import asyncio

    from connectors.webchat.relay import RedisRelay
    from tests.conftest import REDIS_URL

    prefix = f"resonanz:test:{uuid.uuid4().hex}"
    got_a, got_b = Recorder(), Recorder()
    a = RedisRelay(REDIS_URL, prefix, deliver=got_a.deliver, resync=got_a.resync, backoff=(0.05, 0.5))
    b = RedisRelay(REDIS_URL, prefix, deliver=got_b.deliver, resync=got_b.resync, backoff=(0.05, 0.5), max_pending=3)
    try:
        await a.start()
        await a.join("s1")
        await a.join("s2")
        # B is not started yet: nothing drains its backlog, the two oldest frames (of s1) are dropped.
        for n, session in enumerate(["s1", "s1", "s2", "s2", "s2"]):
            b.publish(session, {"type": "message", "n": n})
        await b.start()
        assert await asyncio.wait_for(got_a.resynced.get(), 10) == ["s1"]  # A's sockets of s1 get the history
        assert [await asyncio.wait_for(got_a.frames.get(), 10) for _ in range(3)] == [
            ("s2", {"type": "message", "n": n}) for n in (2, 3, 4)]

        # A hundred frames in order; a relay never passes on its own frames, B holds no socket.
        await b.join("s1")
        for n in range(100):
            a.publish("s1", {"type": "message", "n": n})
        assert [await asyncio.wait_for(got_b.frames.get(), 10) for _ in range(100)] == [
            ("s1", {"type": "message", "n": n}) for n in range(100)]
        b.leave("s1")
        # Redis sent A any echo of its 100 frames before B even received them, so before this one.
        b.publish("s2", {"type": "message", "n": "barrier"})
        assert await asyncio.wait_for(got_a.frames.get(), 10) == ("s2", {"type": "message", "n": "barrier"})
        assert got_a.frames.empty() and got_b.frames.empty() and got_a.resynced.empty() and got_b.resynced.empty()
    finally:
        await b.close()
        await a.close()
