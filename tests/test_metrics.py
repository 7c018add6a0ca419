"""/metrics of the real gateway while traffic flows (REST, Telegram and SMS against local fake
providers, an agent through the API): every counter moves by exactly what was sent, the gauges read
from the database show the queue and the agent, and only allowed scrapes are answered."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from connectors.fakes.telegram import FakeTelegram, text_update
from connectors.fakes.twilio import FakeTwilio
from handover.auth import create_agent, issue_api_token
from resonanz.app import DISPATCHER, create_app
from resonanz.metrics import access_refused
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, Handover, Queue
from tests.conftest import TELEGRAM_SECRET
from tests.support.push import HeldEngine, World, push_gateway
from tests.support.scripted_engine import ScriptedEngine, serve_engine

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape(url: str, headers: dict[str, str] | None = None) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics", headers=headers or {}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        return parse(await r.text())


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def world(database: Database, tmp_path: Path) -> AsyncIterator[World]:
    engine = HeldEngine()
    engine.gate.set()  # answers at once
    async with serve_engine(engine) as engine_url, FakeTelegram() as tg, FakeTwilio() as tw:
        async with push_gateway(database, tmp_path, engine_url, engine, tg, tw,
                                connectors=("rest", "telegram", "sms", "webchat")) as w:
            yield w


async def rest(w: World, sender: str, text: str) -> list[dict]:
    async with aiohttp.ClientSession() as http, http.post(
        w.url + "/webhooks/rest/webhook", json={"sender": sender, "message": text}
    ) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["messages"]


async def test_counters_move_exactly_with_the_traffic(world: World, database: Database) -> None:
    w = world
    before = await scrape(w.url)
    assert value(before, "resonanz_database_up") == 1
    engine_url = next(iter(w.app[DISPATCHER].engine.engines))
    assert value(before, "resonanz_engine_up", engine=engine_url) == 1

    # Scraped over and over while the traffic flows: always answered, counters never go back.
    traffic_done = asyncio.Event()
    scrapes: list[Samples] = []

    async def keep_scraping() -> None:
        while not traffic_done.is_set():
            scrapes.append(await scrape(w.url))

    scraper = asyncio.ensure_future(keep_scraping())

    rest_replies = 0
    for i in range(3):
        rest_replies += len(await rest(w, f"m-{uuid.uuid4().hex[:8]}", f"hallo {i}"))
    chat = random.randint(10**8, 10**9)
    first = random.randint(10**6, 10**7)
    for n in range(2):
        status, _ = await w.tg.deliver_update(text_update(first + n, chat, f"hallo {n}"),
                                              url=w.url + "/webhooks/telegram/webhook", secret_token=TELEGRAM_SECRET)
        assert status == 200
    # The provider retries an update: stored once, counted once.
    status, _ = await w.tg.deliver_update(text_update(first, chat, "hallo 0"),
                                          url=w.url + "/webhooks/telegram/webhook", secret_token=TELEGRAM_SECRET)
    assert status == 200
    phone = "+49151" + "".join(random.choices("0123456789", k=8))
    status, _ = await w.tw.post_webhook(f"{w.url}/webhooks/sms/webhook", w.tw.sms_params(phone, "hallo sms"))
    assert status == 200
    # Forged requests: a wrong Telegram secret, an SMS webhook without a signature.
    status, _ = await w.tg.deliver_update(text_update(first + 9, chat, "x"),
                                          url=w.url + "/webhooks/telegram/webhook", secret_token="wrong-secret-0123")
    assert status == 403
    async with aiohttp.ClientSession() as http, http.post(f"{w.url}/webhooks/sms/webhook",
                                                          data=w.tw.sms_params(phone, "forged")) as r:
        assert r.status == 403
    async with aiohttp.ClientSession() as http, http.get(f"{w.url}/webchat/ws",
                                                         headers={"Origin": "https://evil.example"}) as r:
        assert r.status == 403  # another site's page may not open the chat
    await w.app[DISPATCHER].settled()
    await w.app[DISPATCHER].outbox.tasks.idle()
    traffic_done.set()
    await scraper

    after = await scrape(w.url)
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}

    def d(name: str, **labels: str) -> float:
        return delta.get((name, frozenset(labels.items())), 0.0)

    assert d("resonanz_messages_in_total", channel="rest") == 3
    assert d("resonanz_messages_in_total", channel="telegram") == 2
    assert d("resonanz_messages_in_total", channel="sms") == 1
    assert d("resonanz_messages_out_total", channel="rest", author="bot") == rest_replies == 3
    assert d("resonanz_messages_out_total", channel="telegram", author="bot") == len(w.tg.sent) == 2
    assert d("resonanz_messages_out_total", channel="sms", author="bot") == 1
    assert d("resonanz_turn_seconds_count", channel="rest") == 3
    assert d("resonanz_turn_seconds_count", channel="telegram") == 2
    assert d("resonanz_turn_seconds_count", channel="sms") == 1
    assert d("resonanz_turn_seconds_sum", channel="rest") > 0
    assert d("resonanz_webhook_verification_failures_total", channel="telegram", status="403") == 1
    assert d("resonanz_webhook_verification_failures_total", channel="sms", status="403") == 1
    assert d("resonanz_webhook_verification_failures_total", channel="webchat", status="403") == 1
    assert d("resonanz_webhook_verification_failures_total", channel="rest", status="403") == 0
    assert d("resonanz_outbox_failed_total", channel="telegram") == 0
    assert value(after, "resonanz_inbound_unanswered") == 0
    assert value(after, "resonanz_outbox_messages", status="pending") == 0
    assert value(after, "resonanz_outbox_messages", status="sending") == 0

    assert scrapes, "no scrape ran while the traffic flowed"
    name = ("resonanz_messages_in_total", frozenset({("channel", "rest")}))
    seen = [s.get(name, 0.0) for s in [before, *scrapes, after]]
    assert seen == sorted(seen)


async def test_queue_agents_and_relay(world: World, database: Database) -> None:
    w = world
    await create_agent(database, email="metrics@example.org", password="correct horse battery",
                       display_name="Metrics Agent", role="agent", skills=("general",), languages=("de", "en"))
    async with database.session() as s:
        agent = await s.scalar(select(Agent).where(Agent.email == "metrics@example.org"))
        agent.status = "online"
        agent_id = agent.id
    bearer = {"Authorization": f"Bearer {await issue_api_token(database, agent_id)}"}
    before = await scrape(w.url)
    assert value(before, "resonanz_agents", status="online") == 1

    sender = f"m-{uuid.uuid4().hex[:8]}"
    await rest(w, sender, "ich möchte einen Mensch sprechen")
    async with database.session() as s:
        handover, queue = (await s.execute(select(Handover, Queue.name).join(Queue, Queue.id == Handover.queue_id))).one()
    waiting = await scrape(w.url)
    assert value(waiting, "resonanz_queue_waiting", queue=queue) == 1
    assert value(waiting, "resonanz_queue_oldest_wait_seconds", queue=queue) > 0

    async with aiohttp.ClientSession(headers=bearer) as http:
        async with http.post(f"{w.url}/api/v1/handovers/{handover.id}/accept", json={}) as r:
            assert r.status == 200, await r.text()
        await rest(w, sender, "sind Sie da?")  # the agent owns it: relayed to the console
        async with http.post(f"{w.url}/api/v1/handovers/{handover.id}/messages", json={"text": "Ja, hier."}) as r:
            assert r.status == 201, await r.text()
    after = await scrape(w.url)
    assert value(after, "resonanz_queue_waiting", queue=queue) == 0
    assert value(after, "resonanz_queue_oldest_wait_seconds", queue=queue) == 0

    def d(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert d("resonanz_relay_seconds_count", direction="to_agent", channel="rest") == 1
    assert d("resonanz_relay_seconds_count", direction="to_customer", channel="rest") == 1
    assert d("resonanz_messages_out_total", channel="rest", author="agent") == 1
    assert d("resonanz_messages_in_total", channel="rest") == 2
    assert d("resonanz_turn_seconds_count", channel="rest") == 1  # the agent-owned message has no turn


async def test_loopback_scrapes_through_a_proxy_are_refused(world: World) -> None:
    async with aiohttp.ClientSession() as http:
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            async with http.get(world.url + "/metrics", headers={header: "203.0.113.9"}) as r:
                assert r.status == 403, header


@pytest.mark.parametrize("peer", ["203.0.113.9", "10.0.0.5", "2001:db8::1", None])
def test_without_a_token_only_loopback_peers_may_scrape(peer: str | None) -> None:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 1234) if name == "peername" and peer else default
    refused = access_refused(make_mocked_request("GET", "/metrics", transport=transport), None)
    assert refused is not None and refused.status == 403


async def test_with_a_token_every_scrape_needs_it(database: Database, tmp_path: Path) -> None:
    token = "metrics-" + uuid.uuid4().hex
    async with serve_engine(ScriptedEngine()) as engine_url:
        settings = Settings(DATABASE_URL=database.url, engine_url=engine_url, connectors=("rest",),
                            var_dir=tmp_path, metrics_token=token)
        app: web.Application = await create_app(settings, db=database)
        async with TestClient(TestServer(app)) as client:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token},
                            {"Authorization": f"Basic {token}"}):
                r = await client.get("/metrics", headers=headers)
                assert r.status == 401, headers
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
            r = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert r.status == 200
            assert "# TYPE resonanz_messages_in_total counter" in await r.text()


async def test_stepup_verification_outcomes_are_counted(database: Database) -> None:
    from bot.verification import Verification, VerificationPolicy
    from resonanz.metrics import Metrics

    async def factor(s: object, number: str) -> str | None:
        return "4711" if number == "K-1" else None

    metrics = Metrics()
    service = Verification(database, factor, VerificationPolicy(max_failures_per_conversation=2),
                           on_outcome=metrics.stepup)
    conversation = "conv-" + uuid.uuid4().hex
    assert (await service.check(conversation, "K-1", "4711")).outcome == "verified"
    assert (await service.check(conversation, "K-1", "0000")).outcome == "failed"
    assert (await service.check(conversation, "K-9", "4711")).outcome == "locked"  # the second failure
    assert (await service.check(conversation, "K-1", "4711")).outcome == "locked"  # refused unchecked

    def count(outcome: str) -> float | None:
        return metrics.registry.get_sample_value("resonanz_stepup_verifications_total", {"outcome": outcome})

    assert (count("verified"), count("failed"), count("locked")) == (1, 1, 2)
