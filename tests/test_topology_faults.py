"""Faults in the two-gateway topology (resonanz/topology.py): real gateway processes on real
PostgreSQL and Redis, each reached over TCP; the engines are scripted (in this process, two of
them behind RESONANZ_ENGINE_URLS), the providers are the local fakes driven by the real clients.

- kill -9 of one gateway under Telegram and SMS load: the other keeps serving, the killed one's
  leased messages are taken over after their lease, every acknowledged message is answered
  exactly once at the providers;
- a private Redis server killed and started again on its port: consoles on both gateways are
  told to resync and live events flow again; no message is lost meanwhile;
- a private PostgreSQL cluster stopped and started: webhooks are refused (not acknowledged)
  while it is down, the gateways recover without any action, and every acknowledged message
  and every redelivered one is answered exactly once.

Short leases and sweeps (RECOVERY) keep each test to seconds."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import WSMsgType
from sqlalchemy import select

from connectors.fakes.telegram import FakeTelegram, text_update
from connectors.fakes.twilio import FakeTwilio
from resonanz.store import Database
from resonanz.store.models import Conversation, Message
from resonanz.store.vocabulary import MessageStatus
from resonanz.topology import GatewayProcess, Topology
from tests.conftest import (
    REDIS_URL, TELEGRAM_SECRET, _service_missing, make_database_url, migrated_database, require_redis,
)
from tests.support.echo_engine import EchoEngine, count
from tests.support.scripted_engine import serve_engine
from tests.support.services import PrivatePostgres, PrivateRedis
from tests.support.settle import pipeline_settled, until

pytestmark = pytest.mark.redis

WAIT = 40.0  # seconds any single expected outcome may take (two loaded cores, process starts)
LEASE = 3  # RESONANZ_TURN_LEASE_SECONDS / OUTBOX_LEASE_SECONDS: a dead gateway's work waits this long
RECOVERY = {"turn_lease_seconds": LEASE, "turn_sweep_seconds": 0.5, "outbox_lease_seconds": LEASE,
            "outbox_sweep_seconds": 0.5, "outbox_backoff_base": 0.05, "outbox_backoff_max": 1.0,
            "offer_choice_at_start": False, "engine_probe_seconds": 0.5}
# Twilio signs the URL it calls: behind the reverse proxy that is one URL for every gateway.
PUBLIC = "https://resonanz.example"


@dataclass
class Provider:
    """The Telegram and SMS providers, delivering to whichever gateway the test says (no sticky
    routing), and redelivering a webhook that was not acknowledged, as the real ones do."""

    tg: FakeTelegram
    tw: FakeTwilio
    update_ids: itertools.count = field(default_factory=lambda: itertools.count(random.randint(10**6, 10**7)))
    expected: dict[tuple[str, Any], list[str]] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        twilio = {"account_sid": self.tw.account_sid, "auth_token": self.tw.auth_token,
                  "api_base_url": self.tw.base_url, "public_url": PUBLIC}
        return {"telegram": {"token": self.tg.token, "secret": TELEGRAM_SECRET, "api_base_url": self.tg.base_url,
                             "file_base_url": self.tg.base_file_url},
                "sms": {**twilio, "from": "+4930123456"}}

    @staticmethod
    def customer(channel: str) -> tuple[str, Any]:
        return (channel, random.randint(10**8, 10**9) if channel == "telegram"
                else "+49151" + "".join(random.choices("0123456789", k=8)))

    def webhook(self, who: tuple[str, Any], text: str) -> Callable[[str], Awaitable[int]]:
        """One inbound message, deliverable (again) to any gateway: returns its HTTP status."""
        channel, address = who
        if channel == "telegram":
            update = text_update(next(self.update_ids), address, text)

            async def telegram(url: str) -> int:
                status, _ = await self.tg.deliver_update(update, url=url + "/webhooks/telegram/webhook",
                                                         secret_token=TELEGRAM_SECRET)
                return status
            return telegram
        params = self.tw.sms_params(address, text)

        async def sms(url: str) -> int:
            headers, body = self.tw.signed_webhook(PUBLIC + "/webhooks/sms/webhook", params)
            async with aiohttp.ClientSession() as http, \
                    http.post(url + "/webhooks/sms/webhook", data=body, headers=headers) as r:
                return r.status
        return sms

    async def send(self, who: tuple[str, Any], text: str, gateways: list[GatewayProcess],
                   refused: list[str] | None = None) -> str:
        """Deliver until a gateway acknowledges; tries them in the given order, again and again
        (a provider retries a webhook that got no 200). Returns the URL that acknowledged."""
        deliver = self.webhook(who, text)
        deadline = time.monotonic() + WAIT
        for gateway in itertools.cycle(gateways):
            status = None
            with contextlib.suppress(aiohttp.ClientError, OSError):
                status = await deliver(gateway.url)
            if status == 200:
                self.expected.setdefault(who, []).append("re:" + text)
                return gateway.url
            if refused is not None:
                refused.append(f"{gateway.url}: {status}")
            assert time.monotonic() < deadline, f"no gateway acknowledged {text!r}: {refused}"
            await asyncio.sleep(0.2)  # a provider's retry interval
        raise AssertionError("unreachable")

    def replies(self, who: tuple[str, Any]) -> list[str]:
        channel, address = who
        if channel == "telegram":
            return [str(c.params.get("text")) for c in self.tg.sent if c.params.get("chat_id") == address]
        return [m["Body"] for m in self.tw.messages if m.get("To") == address]

    def all_answered_once(self, interrupted: frozenset[tuple[str, str, str]] = frozenset()) -> bool:
        """Every expected reply arrived exactly once. A reply in `interrupted` ((channel,
        recipient, text) of a reply stored `unknown`: its provider call was under way when its
        gateway died) may be missing: neither provider can say whether it got it, so it is never
        resent (bot/outbox.py) - but it may not arrive twice either."""
        return not self._wrong(interrupted)

    def _wrong(self, interrupted: frozenset[tuple[str, str, str]]) -> dict[Any, tuple[list[str], list[str]]]:
        wrong = {}
        for who, expected in self.expected.items():
            got = sorted(self.replies(who))
            excused = [t for t in expected if (who[0], str(who[1]), t) in interrupted and t not in got]
            if got != sorted(t for t in expected if t not in excused):
                wrong[who] = (got, sorted(expected))
        return wrong

    def report(self, interrupted: frozenset[tuple[str, str, str]] = frozenset()) -> str:
        return f"customers answered wrongly (got, expected): {self._wrong(interrupted)}"


async def interrupted_replies(db: Database) -> frozenset[tuple[str, str, str]]:
    """(channel, recipient, text) of every reply stored `unknown`."""
    async with db.session() as s:
        rows = (await s.execute(
            select(Conversation.address, Message.text).join(Conversation, Message.conversation_id == Conversation.id)
            .where(Message.status == MessageStatus.UNKNOWN)
        )).all()
    return frozenset((a["channel"], a["recipient"], text) for a, text in rows)


@pytest_asyncio.fixture(loop_scope="session")
async def provider() -> AsyncIterator[Provider]:
    async with FakeTelegram() as tg, FakeTwilio() as tw:
        yield Provider(tg, tw)


@contextlib.asynccontextmanager
async def echo_engines(engine: EchoEngine) -> AsyncIterator[list[str]]:
    """The same scripted engine behind two URLs: the gateways' pool of two."""
    async with serve_engine(engine) as a, serve_engine(engine) as b:
        yield [a, b]


async def pg_database(tmp_path: Path) -> tuple[Database, Callable[[], Awaitable[None]]]:
    url, drop = await make_database_url("postgresql", tmp_path)
    return await migrated_database(url), drop


def tails(topology: Topology) -> Callable[[], str]:
    return lambda: "\n".join(f"--- {g.url}\n{g.tail(3000)}" for g in topology.processes)


# --- a) kill -9 one gateway under load --------------------------------------------------------


async def test_kill_9_of_one_gateway_under_load_loses_and_duplicates_nothing(
    provider: Provider, tmp_path: Path
) -> None:
    await require_redis()
    db, drop = await pg_database(tmp_path)
    engine = EchoEngine()
    started = time.monotonic()
    try:
        async with echo_engines(engine) as engine_urls:
            topology = Topology(db.url, REDIS_URL, tmp_path / "topology", engine_urls=engine_urls,
                                connectors=("telegram", "sms"), connector_options=provider.options(),
                                settings={**RECOVERY, "redis_channel": "test:" + secrets.token_hex(6)})
            async with topology:
                a, b = topology.gateway(0), topology.gateway(1)
                customers = [provider.customer("telegram" if i % 2 else "sms") for i in range(8)]
                # Two turns leased by B, held in the engine at the kill.
                for i, who in enumerate(customers[:2]):
                    await provider.send(who, f"held {i}", [b])
                async with engine.changed:
                    await asyncio.wait_for(engine.changed.wait_for(lambda: engine.held == 2), WAIT)
                killed = asyncio.Event()

                async def customer(who: tuple[str, Any], n: int) -> None:
                    """Writes n messages, each to the next gateway in turn (no stickiness)."""
                    for j in range(n):
                        first = [a, b][(j + hash(who)) % 2]
                        await provider.send(who, f"m{j}", [first, a if first is b else b])
                        if j == n // 2:
                            await killed.wait()  # the second half after the kill: only A is left

                load = asyncio.gather(*(customer(w, 6) for w in customers))
                await until(lambda: sum(len(e) for e in provider.expected.values()) >= 24, "load under way", WAIT,
                            tails(topology))
                await b.kill()
                engine.gate.set()  # B's held calls died with it; its leases run out in LEASE seconds
                killed.set()
                await load
                acknowledged = sum(len(e) for e in provider.expected.values())
                assert acknowledged == 2 + 8 * 6
                await until(lambda: pipeline_settled(db), "nothing left to process or send", WAIT, tails(topology))
                # Settled: nothing can still produce a reply, so a loss or a duplicate shows now.
                # A reply whose provider call was under way at the kill is `unknown`: it may or
                # may not have reached the provider and is never resent, so it may be missing
                # (the agent sees it flagged) but never doubled. Only B's sends at the kill can be.
                interrupted = await interrupted_replies(db)
                assert len(interrupted) <= len(customers), interrupted
                assert provider.all_answered_once(interrupted), provider.report(interrupted)
                assert await count(db, Message.status == MessageStatus.FAILED) == 0
                # The held messages were answered by A after B's lease ran out.
                assert engine.held >= 4, engine.held
                assert a.running and not b.running
    finally:
        engine.gate.set()
        await db.dispose()
        await drop()
    print(f"\n[topology] kill -9 of a gateway: {time.monotonic() - started:.1f}s")


# --- c) Redis restarted -----------------------------------------------------------------------


async def _stream(http: aiohttp.ClientSession, url: str, token: str) -> aiohttp.ClientWebSocketResponse:
    """An agent's live stream, subscribed (the server answers our ping after it subscribed)."""
    ws = await http.ws_connect(url.replace("http", "ws", 1) + "/api/v1/stream",
                               headers={"Authorization": f"Bearer {token}"}, autoping=False)
    await ws.ping(b"subscribed?")
    msg = await asyncio.wait_for(ws.receive(), WAIT)
    assert msg.type == WSMsgType.PONG, msg
    return ws


async def _receive(ws: aiohttp.ClientWebSocketResponse, want: Callable[[dict], bool]) -> dict:
    while True:
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        if msg.type == WSMsgType.PING:
            await ws.pong(msg.data)
            continue
        assert msg.type == WSMsgType.TEXT, msg
        event = msg.json()
        if want(event):
            return event


async def _rest(http: aiohttp.ClientSession, url: str, sender: str, text: str) -> dict:
    async with http.post(url + "/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


def _bot_reply_to(text: str) -> Callable[[dict], bool]:
    return lambda e: (e.get("type") == "message" and e["message"]["author"] == "bot"
                      and e["message"]["text"] == "re:" + text)


async def test_redis_restarted_consoles_resync_and_nothing_is_lost(tmp_path: Path) -> None:
    from handover.auth import create_agent, issue_api_token
    from tests.support.desk import PASSWORD

    if PrivateRedis.binary() is None:
        _service_missing("redis-server (binary)", FileNotFoundError("redis-server"))
    redis = PrivateRedis(tmp_path / "redis")
    await redis.start()
    db, drop = await pg_database(tmp_path)
    engine = EchoEngine()
    engine.gate.set()
    started = time.monotonic()
    try:
        async with echo_engines(engine) as engine_urls, aiohttp.ClientSession() as http:
            topology = Topology(db.url, redis.url, tmp_path / "topology", engine_urls=engine_urls,
                                connectors=("rest",), settings=RECOVERY)
            async with topology:
                a, b = topology.gateway(0), topology.gateway(1)
                agent = await create_agent(db, email="petra@x.de", password=PASSWORD, display_name="Petra Beispiel")
                token = await issue_api_token(db, agent.id)
                on_a = await _stream(http, a.url, token)
                # Live across gateways: a turn on B shows on A's console.
                await _rest(http, b.url, "greta", "vorher")
                await _receive(on_a, _bot_reply_to("vorher"))

                await redis.kill()
                # Redis down: both gateways keep answering; nothing waits for Redis.
                during = [await _rest(http, [a, b][i % 2].url, "greta", f"waehrend {i}") for i in range(4)]
                assert all(r["messages"][0]["text"] == f"re:waehrend {i}" for i, r in enumerate(during))
                await redis.start()  # the same port, empty: no subscriber, no key survived

                # A's console is told to resync (it may have missed B's events) ...
                await _receive(on_a, lambda e: e.get("type") == "resync")
                # ... and re-fetching its list shows the conversation as it is now; every message
                # of the outage is stored and answered.
                conversation = during[0]["conversation_id"]
                async with http.get(f"{a.url}/api/v1/conversations", params={"state": "bot"},
                                    headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == 200, await r.text()
                    rows = {c["id"]: c for c in (await r.json())["conversations"]}
                assert rows[conversation]["last_message"]["text"] == "re:waehrend 3", rows[conversation]
                async with db.session() as s:
                    stored = set((await s.scalars(select(Message.text).where(
                        Message.conversation_id == conversation))).all())
                assert {f"waehrend {i}" for i in range(4)} | {f"re:waehrend {i}" for i in range(4)} <= stored
                # Live again once B's hub has re-subscribed too: a console on B sees A's turns
                # and A's console sees B's.
                on_b = await _stream(http, b.url, token)
                await until(lambda: _live(http, a, b, on_a, on_b), "live events between the gateways again", WAIT,
                            tails(topology))
                # And a login (its rate limit lives in Redis) works after the restart.
                async with http.post(a.url + "/api/v1/login", json={"email": "petra@x.de", "password": PASSWORD}) as r:
                    assert r.status == 200, await r.text()
                await on_a.close()
                await on_b.close()
    finally:
        await redis.kill()
        await db.dispose()
        await drop()
    print(f"\n[topology] Redis restarted: {time.monotonic() - started:.1f}s")


async def _live(http: aiohttp.ClientSession, a: GatewayProcess, b: GatewayProcess,
                on_a: aiohttp.ClientWebSocketResponse, on_b: aiohttp.ClientWebSocketResponse) -> bool:
    """One turn on each gateway reaches the other gateway's console within a second."""
    text_a, text_b = "nach " + secrets.token_hex(3), "nach " + secrets.token_hex(3)
    await _rest(http, a.url, "greta", text_a)
    await _rest(http, b.url, "greta", text_b)
    try:
        await asyncio.wait_for(_receive(on_b, _bot_reply_to(text_a)), 1)
        await asyncio.wait_for(_receive(on_a, _bot_reply_to(text_b)), 1)
    except TimeoutError:
        return False
    return True


# --- d) PostgreSQL restarted ------------------------------------------------------------------


async def test_postgresql_restarted_gateways_recover_without_manual_action(
    provider: Provider, tmp_path: Path
) -> None:
    if not PrivatePostgres.available():
        _service_missing("a private PostgreSQL cluster (initdb in /usr/lib/postgresql/15/bin)",
                         FileNotFoundError("initdb"))
    await require_redis()
    pg = PrivatePostgres()
    await pg.init()
    await pg.start()
    db = await migrated_database(pg.url)
    engine = EchoEngine()
    started = time.monotonic()
    try:
        async with echo_engines(engine) as engine_urls, aiohttp.ClientSession() as http:
            topology = Topology(pg.url, REDIS_URL, tmp_path / "topology", engine_urls=engine_urls,
                                connectors=("telegram", "sms"), connector_options=provider.options(),
                                settings={**RECOVERY, "redis_channel": "test:" + secrets.token_hex(6)})
            async with topology:
                a, b = topology.gateway(0), topology.gateway(1)
                customers = [provider.customer("telegram" if i % 2 else "sms") for i in range(4)]
                engine.gate.set()
                for i, who in enumerate(customers):
                    await provider.send(who, f"vorher {i}", [[a, b][i % 2]])
                await until(provider.all_answered_once, "the first replies", WAIT, tails(topology))
                # Two turns in the engine when the database goes: their second transaction fails.
                engine.gate.clear()
                engine.held = 0
                for i, who in enumerate(customers[:2]):
                    await provider.send(who, f"held {i}", [[a, b][i % 2]])
                async with engine.changed:
                    await asyncio.wait_for(engine.changed.wait_for(lambda: engine.held == 2), WAIT)

                await pg.stop()
                await db.dispose()  # the test's own pool: its connections are gone too
                engine.gate.set()
                # Down: a webhook is not acknowledged (the provider keeps it and retries), and
                # readiness says why.
                refused: list[str] = []
                retried = [asyncio.ensure_future(provider.send(who, f"waehrend {i}", [a, b], refused))
                           for i, who in enumerate(customers)]
                await until(lambda: len(refused) >= 4, "webhooks refused while the database is down", WAIT,
                            tails(topology))
                assert all(r.rsplit(": ", 1)[1].startswith("5") for r in refused), refused  # alive, refusing
                for gateway in (a, b):
                    status, body = await gateway.readyz(http)
                    assert status == 503 and body["database"] is False, body
                assert not any(t.done() for t in retried)
                # An outage longer than two leases: heartbeats, sweeps and turn re-runs all fail
                # meanwhile (the duration of the fault, not a wait for an outcome).
                await asyncio.sleep(2 * LEASE)
                assert not any(t.done() for t in retried)

                await pg.start()  # same port, same data
                await asyncio.gather(*retried)
                for gateway in (a, b):
                    await gateway.wait_ready(WAIT)
                for i, who in enumerate(customers):
                    await provider.send(who, f"nachher {i}", [[b, a][i % 2]])
                await until(provider.all_answered_once, "every acknowledged message answered", WAIT,
                            lambda: provider.report() + tails(topology)())
                await until(lambda: pipeline_settled(db), "nothing left to process or send", WAIT, tails(topology))
                assert provider.all_answered_once(), provider.report()
                assert await count(db, Message.status.in_((MessageStatus.UNKNOWN, MessageStatus.FAILED))) == 0
                assert a.running and b.running
    finally:
        engine.gate.set()
        await db.dispose()
        await pg.remove()
    print(f"\n[topology] PostgreSQL restarted: {time.monotonic() - started:.1f}s")
