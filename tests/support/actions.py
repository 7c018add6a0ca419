"""The action server on a seeded SQLite store, and request bodies shaped like the ones Rasa 3.6 sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.actions import Registry
from bot.actions.server import WEBHOOK_PATH, ActionServer
from bot.reference import models as _reference_models  # noqa: F401 - registers the reference tables
from bot.reference.demo_data import seed_demo_data
from resonanz.customer_number import CustomerNumbers
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Base

TOKEN = "s3cret-action-token"


@pytest_asyncio.fixture
async def sw_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'actions.db'}")
    async with db.engine.begin() as c:
        await c.run_sync(Base.metadata.create_all)
    assert await seed_demo_data(db) is True
    yield db
    await db.dispose()


async def _client(db: Database, registry: Registry | None = None) -> TestClient:
    app = web.Application()
    numbers = CustomerNumbers(Settings().customer_number_pattern)  # the reference bot's, from resonanz.yml
    app.router.add_routes(ActionServer(db, TOKEN, registry, customer_numbers=numbers).routes())
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


def user_event(text: str, intent: str, entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "event": "user",
        "text": text,
        "parse_data": {"intent": {"name": intent, "confidence": 0.99}, "entities": entities or []},
        "metadata": {"conversation_id": "conv-1"},
    }


def request_body(
    action: str,
    slots: dict[str, Any] | None = None,
    *,
    language: str = "en",
    text: str = "",
    intent: str = "inform",
    candidates: dict[str, Any] | None = None,
    form: str | None = None,
) -> dict[str, Any]:
    """Like Rasa: for `validate_<form>` the slot candidates trail the form's action event, and the
    tracker's slots already hold them."""
    all_slots = {"language": language, **(slots or {}), **(candidates or {})}
    events: list[dict[str, Any]] = [
        {"event": "action", "name": "action_listen"},
        user_event(text, intent),
    ]
    if form:
        events.append({"event": "slot", "name": "requested_slot", "value": all_slots.get("requested_slot")})
        events.append({"event": "action", "name": form})
    for name, value in (candidates or {}).items():
        events.append({"event": "slot", "name": name, "value": value})
    return {
        "next_action": action,
        "sender_id": "conv-1-0",
        "version": "3.6.21",
        "domain": {},
        "tracker": {
            "sender_id": "conv-1-0",
            "slots": all_slots,
            "latest_message": {"text": text, "intent": {"name": intent, "confidence": 0.99}, "entities": []},
            "events": events,
            "active_loop": {"name": form} if form else {},
            "latest_action_name": form or "action_listen",
        },
    }


async def call(client: TestClient, body: dict[str, Any], *, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    params = {"token": token} if token is not None else {}
    resp = await client.post(WEBHOOK_PATH, json=body, params=params)
    return resp.status, await resp.json()


def slot_events(result: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in result["events"] if e["event"] == "slot"}


def response_names(result: dict[str, Any]) -> list[str]:
    return [r.get("response") for r in result["responses"]]
