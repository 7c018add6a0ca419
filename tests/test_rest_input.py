"""The REST channel's contract for bad input: precise 400/413 errors, never a 500, nothing lost.

The gateway here has no engine (its URL is a closed port), so valid messages take the
"engine unavailable" path: an apology, state `queued`, and the message kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Message
from tests.conftest import free_port

URL = "/webhooks/rest/webhook"


@pytest_asyncio.fixture(loop_scope="session")
async def client(database: Database) -> AsyncIterator[TestClient]:
    settings = Settings(
        DATABASE_URL=database.url,
        engine_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        engine_startup_wait=0,
        engine_timeout=1,
        connectors=("rest",),
    )
    app = await create_app(settings, db=database)
    async with TestClient(TestServer(app)) as c:
        yield c


async def _count(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")))


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "body is not valid JSON"),
        (b"[1, 2]", 400, "body must be a JSON object"),
        (b'{"message": "hi"}', 400, "field 'sender' is missing"),
        (b'{"sender": "", "message": "hi"}', 400, "field 'sender' is empty"),
        (b'{"sender": 42, "message": "hi"}', 400, "field 'sender' must be a string"),
        (b'{"sender": "a"}', 400, "field 'message' is missing"),
        (b'{"sender": "a", "message": "   "}', 400, "field 'message' is empty"),
        (b'{"sender": "a", "message": ["hi"]}', 400, "field 'message' must be a string"),
        (b'{"sender": "a", "message": "hi", "metadata": "x"}', 400, "field 'metadata' must be an object"),
        (json.dumps({"sender": "s" * 129, "message": "hi"}).encode(), 400, "field 'sender' is longer than 128 characters"),
        (json.dumps({"sender": "a", "message": "x" * 4097}).encode(), 413, "field 'message' is longer than 4096 characters"),
        (b"x" * (70 * 1024), 413, "request body is larger than 65536 bytes"),
        (b"", 400, "body is not valid JSON"),
    ],
)
async def test_bad_input_gets_a_precise_error_and_stores_nothing(
    client: TestClient, database: Database, body: bytes, status: int, error: str
) -> None:
    resp = await client.post(URL, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status
    assert await resp.json() == {"error": error}
    assert await _count(database) == 0


async def test_message_of_exactly_the_limit_is_accepted(client: TestClient) -> None:
    resp = await client.post(URL, json={"sender": "limit", "message": "x" * 4096})
    assert resp.status == 200


async def test_dead_engine_apologises_queues_and_keeps_the_message(client: TestClient, database: Database) -> None:
    resp = await client.post(URL, json={"sender": "erika", "message": "Ich möchte meinen Zählerstand melden"})
    assert resp.status == 200
    body = await resp.json()
    assert body["state"] == "queued"
    assert len(body["messages"]) == 1 and "Entschuldigung" in body["messages"][0]["text"]
    async with database.session() as s:
        msgs = (await s.scalars(select(Message).order_by(Message.id))).all()
    # The apology, then where the customer stands in the queue for a person.
    assert [(m.direction, m.author, m.status) for m in msgs] == [
        ("in", "customer", "processed"), ("out", "system", "sent"), ("out", "system", "sent")]
    assert msgs[0].text == "Ich möchte meinen Zählerstand melden"
    assert "Position 1" in msgs[2].text


async def test_messages_endpoint_lists_outbound_with_author_and_timestamp(client: TestClient) -> None:
    await client.post(URL, json={"sender": "max", "message": "hello there, I need help"})
    resp = await client.get("/webhooks/rest/messages", params={"sender": "max"})
    assert resp.status == 200
    body = await resp.json()
    assert body["state"] == "queued"
    apology, position = body["messages"]
    assert apology["author"] == "system" and "Sorry" in apology["text"]
    assert position["author"] == "system" and "number 1 in the queue" in position["text"]
    assert apology["timestamp"].endswith("+00:00") and apology["timestamp"] <= position["timestamp"]


async def test_messages_endpoint_errors(client: TestClient) -> None:
    resp = await client.get("/webhooks/rest/messages")
    assert resp.status == 400 and await resp.json() == {"error": "query parameter 'sender' is missing"}
    resp = await client.get("/webhooks/rest/messages", params={"sender": "nobody-knows-me"})
    assert resp.status == 404 and "no conversation" in (await resp.json())["error"]


async def test_duplicate_message_id_is_stored_once(client: TestClient, database: Database) -> None:
    payload = {"sender": "dup", "message": "hallo", "metadata": {"message_id": "m-1"}}
    first = await (await client.post(URL, json=payload)).json()
    second = await (await client.post(URL, json=payload)).json()
    assert first["conversation_id"] == second["conversation_id"]
    assert second["messages"] == []
    assert await _count(database) == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.dictionaries(st.sampled_from(["sender", "message", "metadata", "extra"]), json_values, max_size=4))
async def test_any_json_object_gets_200_or_a_precise_4xx(client: TestClient, body: dict) -> None:
    resp = await client.post(URL, json=body)
    assert resp.status in (200, 400, 413), await resp.text()
    data = await resp.json()
    if resp.status == 200:
        assert set(data) == {"conversation_id", "state", "messages"}
    else:
        assert set(data) == {"error"} and data["error"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
async def test_arbitrary_bytes_never_cause_a_server_error(client: TestClient, raw: bytes) -> None:
    resp = await client.post(URL, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status in (200, 400, 413)


async def test_health_endpoints_report_what_is_wrong(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok", "pid": os.getpid()}
    resp = await client.get("/readyz")
    assert resp.status == 503  # the database answers, the engine does not
    assert await resp.json() == {
        "status": "not ready", "database": True, "engine": False, "engines": {"up": 0, "total": 1},
    }


async def test_logs_never_contain_message_text(client: TestClient) -> None:
    from structlog.testing import capture_logs

    secret = "Mein Passwort ist Hasenbrot-4711"
    with capture_logs() as logs:
        resp = await client.post(URL, json={"sender": "leak", "message": secret})
        assert resp.status == 200
    assert logs, "the turn should have logged something (engine failure, handover)"
    assert all(secret not in repr(event) for event in logs)
