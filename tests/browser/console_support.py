"""The console test gateway shared by the browser tests: one gateway (SQLite, the scripted engine)
per module, agents and customers through its API, seeded waiting handovers, and logging in."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from handover.auth import create_agent, issue_api_token
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import (Agent, ChannelIdentity, Conversation, Customer, Handover, Message, Queue, new_id,
                                   utcnow)
from tests.browser.axe import assert_accessible
from tests.conftest import make_database_url, migrated_database
from tests.support.scripted_engine import ScriptedEngine, serve_engine

PASSWORD = "geheim-geheim-42"
HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")
NOTIFICATIONS = """
window.__desktop = [];
window.Notification = class { constructor(title, opts) { window.__desktop.push([title, (opts || {}).body]); }
  static get permission() { return "granted"; } static requestPermission() { return Promise.resolve("granted"); } };
"""


@dataclass
class Gateway:
    url: str
    db: Database
    http: aiohttp.ClientSession

    async def customer(self, sender: str, text: str) -> dict:
        async with self.http.post(self.url + "/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def outbound(self, sender: str) -> list[dict]:
        async with self.http.get(self.url + "/webhooks/rest/messages", params={"sender": sender}) as r:
            return (await r.json())["messages"]

    async def agent(self, name: str, *, role: str = "agent", capacity: int = 3, status: str = "away") -> str:
        email = f"{name.split()[0].lower()}-{uuid.uuid4().hex[:6]}@stadtwerke.example"
        await create_agent(self.db, email=email, password=PASSWORD, display_name=name, role=role, capacity=capacity)
        async with self.db.session() as s:
            (await s.scalar(select(Agent).where(Agent.email == email))).status = status
        return email

    async def call(self, email: str, method: str, path: str, body: object = None) -> dict:
        async with self.db.session() as s:
            agent_id = await s.scalar(select(Agent.id).where(Agent.email == email))
        headers = {"Authorization": f"Bearer {await issue_api_token(self.db, agent_id)}"}
        async with self.http.request(method, self.url + path, json=body, headers=headers) as r:
            assert r.status < 300, (path, r.status, await r.text())
            return await r.json()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    from resonanz.app import create_app

    tmp: Path = tmp_path_factory.mktemp("console")
    url, drop = await make_database_url("sqlite", tmp)
    db = await migrated_database(url)
    engine = ScriptedEngine()
    async with serve_engine(engine) as engine_url:
        settings = Settings(DATABASE_URL=db.url, engine_url=engine_url, connectors=("rest",), var_dir=tmp, offer_timeout=300)
        server = TestServer(await create_app(settings, db=db), host="127.0.0.1")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as http:
                yield Gateway(str(server.make_url("")).rstrip("/"), db, http)
        finally:
            await server.close()
            await db.dispose()
            await drop()


async def seed_waiting(gw: Gateway, senders: list[str]) -> None:
    """Waiting handovers as the help desk stores them (customer, identity, conversation, the
    customer's message, the handover in the general German queue), one minute apart."""
    now = utcnow()
    async with gw.db.session() as s:
        queue = await s.scalar(select(Queue).where(Queue.skill == "general", Queue.language == "de"))
        for i, sender in enumerate(senders):
            at = now - timedelta(minutes=len(senders) - i)
            customer = Customer(id=new_id(), language="de", created_at=at)
            address = {"channel": "rest", "recipient": sender, "extra": {}}
            conv = Conversation(id=new_id(), customer_id=customer.id, channel="rest", address=address, state="queued",
                                language="de", created_at=at, updated_at=at)
            s.add(customer)
            await s.flush()
            s.add(conv)
            await s.flush()
            s.add_all([
                ChannelIdentity(customer_id=customer.id, channel="rest", external_id=sender, address=address),
                Message(conversation_id=conv.id, customer_id=customer.id, channel="rest", direction="in", author="customer",
                        text=f"Mensch bitte, Anliegen {i}", status="processed", created_at=at),
                Handover(conversation_id=conv.id, customer_id=customer.id, queue_id=queue.id, reason="customer_request",
                         trigger="intent:request_human", status="waiting", context={"reason": "customer_request"}, created_at=at),
            ])


async def log_in(page: Page, gw: Gateway, email: str) -> None:
    await page.goto(gw.url + "/console")
    await page.get_by_test_id("login-email").fill(email)
    await page.get_by_test_id("login-password").fill(PASSWORD)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("live")).to_have_text("live", timeout=15_000)
