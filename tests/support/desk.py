"""The help desk through the agent API with a scripted engine: the `desk` fixture and its `Desk`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from handover.auth import create_agent
from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, Handover
from tests.support.scripted_engine import ScriptedEngine, serve_engine

PASSWORD = "correct horse battery"


@dataclass
class Desk:
    client: TestClient
    db: Database
    engine: ScriptedEngine

    async def customer(self, sender: str, text: str) -> dict:
        resp = await self.client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def outbound(self, sender: str) -> list[dict]:
        return (await (await self.client.get("/webhooks/rest/messages", params={"sender": sender})).json())["messages"]

    async def agent(self, email: str, *, status: str = "online", skills=("general",), languages=("de", "en"), capacity: int = 3, role: str = "agent") -> dict:
        await create_agent(self.db, email=email, password=PASSWORD, display_name=email.split("@")[0].title() + " Beispiel",
                           role=role, skills=skills, languages=languages, capacity=capacity)
        async with self.db.session() as s:
            a = await s.scalar(select(Agent).where(Agent.email == email))
            a.status = status
            return {"id": a.id, "email": email}

    async def login(self, email: str) -> dict[str, str]:
        """A separate cookie jar per agent: returns headers for bearer auth instead."""
        from handover.auth import issue_api_token

        async with self.db.session() as s:
            agent_id = await s.scalar(select(Agent.id).where(Agent.email == email))
        return {"Authorization": f"Bearer {await issue_api_token(self.db, agent_id)}"}

    async def handover_by_id(self, handover_id: str) -> Handover:
        async with self.db.session() as s:
            return await s.get(Handover, handover_id)

    async def handover_of(self, conversation_id: str) -> Handover:
        async with self.db.session() as s:
            return await s.scalar(select(Handover).where(Handover.conversation_id == conversation_id).order_by(Handover.created_at.desc()))


@pytest_asyncio.fixture(loop_scope="session")
async def desk(database: Database, tmp_path) -> AsyncIterator[Desk]:  # noqa: ANN001
    engine = ScriptedEngine()
    async with serve_engine(engine) as engine_url:
        settings = Settings(DATABASE_URL=database.url, engine_url=engine_url,
                            connectors=("rest",), var_dir=tmp_path, offer_timeout=30)
        app = await create_app(settings, db=database)
        async with TestClient(TestServer(app)) as client:
            yield Desk(client, database, engine)
