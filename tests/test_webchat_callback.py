"""A waiting web chat customer leaves a message for a callback or an e-mail: the contact is checked
by the server, the message is stored with the conversation, the handover leaves the queue as
"callback requested" with the contact the agents see, and export and erasure cover it. The gateway
has no engine: the first message takes the "engine unavailable" path into the queue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from handover.read_model import summaries_json
from resonanz.app import create_app
from resonanz.contact import check_contact
from resonanz.privacy.erase import erase_customer
from resonanz.privacy.export import export_customer
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Conversation, Handover, Message
from tests.conftest import free_port
from tests.support.webchat_client import connect, open_session, until_ack


@pytest_asyncio.fixture(loop_scope="session")
async def client(database: Database, tmp_path: Path) -> AsyncIterator[TestClient]:
    settings = Settings(
        DATABASE_URL=database.url,
        engine_url=f"http://127.0.0.1:{free_port()}",
        engine_startup_wait=0,
        connectors=("webchat",),
        var_dir=tmp_path,
    )
    app = await create_app(settings, db=database)
    async with TestClient(TestServer(app)) as c:
        yield c


def test_contacts_are_checked() -> None:
    assert check_contact("phone", " +49 (30) 123 456-7 ") == "+49 (30) 123 456-7"
    assert check_contact("email", " Kim.Meyer@Example.org ") == "Kim.Meyer@Example.org"
    for via, contact in [("phone", "abc"), ("phone", "12"), ("phone", "+49 30 1234567 <b>"),
                         ("email", "kim@"), ("email", "kim example.org"), ("email", "a@b"), ("fax", "123456789"),
                         ("phone", 49301234567), ("email", "x" * 250 + "@example.org")]:
        assert check_contact(via, contact) is None, (via, contact)


async def test_a_waiting_customer_leaves_a_message_for_a_callback(client: TestClient, database: Database, tmp_path: Path) -> None:
    async with connect(client) as ws:
        await open_session(ws)
        await ws.send_json({"type": "message", "text": "Hallo", "client_id": "c-1"})
        assert (await until_ack(ws))[-1]["state"] == "queued"

        # A contact the server refuses: a precise error, nothing stored, still waiting.
        await ws.send_json({"type": "message", "text": "Bitte zurückrufen", "client_id": "c-2",
                            "callback": {"via": "phone", "contact": "keine Nummer"}})
        error = await ws.receive_json(timeout=10)
        assert error["type"] == "error" and error["code"] == "callback_contact" and error["client_id"] == "c-2"

        await ws.send_json({"type": "message", "text": "Bitte rufen Sie mich wegen der Rechnung an.", "client_id": "c-3",
                            "callback": {"via": "phone", "contact": "+49 30 1234567"}})
        frames = await until_ack(ws)
    ack = frames[-1]
    assert ack["state"] == "bot", frames
    told = [f["text"] for f in frames if f["type"] == "message" and f["author"] == "system"]
    assert len(told) == 1 and "+49 30 1234567" in told[0] and "zurück" in told[0], told

    async with database.session() as s:
        conv = await s.scalar(select(Conversation).where(Conversation.id == ack["conversation_id"]))
        h = await s.scalar(select(Handover).where(Handover.conversation_id == conv.id))
        texts = [m.text for m in await s.scalars(select(Message).where(Message.conversation_id == conv.id).order_by(Message.id))]
        [summary] = await summaries_json(s, [h])
    assert h.status == "cancelled" and h.resolution == "callback_requested" and h.closed_at is not None
    callback = h.context["callback"]
    assert callback["via"] == "phone" and callback["contact"] == "+49 30 1234567"
    assert callback["message"] == "Bitte rufen Sie mich wegen der Rechnung an." and callback["at"]
    assert "Bitte rufen Sie mich wegen der Rechnung an." in texts and "Bitte zurückrufen" not in texts
    assert summary["callback"] == callback  # what the agents' lists and the detail show

    # Personal data: the export carries the contact, the erasure removes it.
    doc = await export_customer(database, conv.customer_id, tmp_path)
    assert "+49 30 1234567" in json.dumps(doc, default=str)
    assert [x["context"]["callback"]["contact"] for x in doc["handovers"]] == ["+49 30 1234567"]
    counts = await erase_customer(database, conv.customer_id, tmp_path)
    assert counts and counts["handovers"] == 1
    async with database.session() as s:
        assert await s.scalar(select(Handover).where(Handover.conversation_id == conv.id)) is None


async def test_an_e_mail_callback_is_answered_in_english(client: TestClient, database: Database) -> None:
    async with connect(client) as ws:
        await ws.send_json({"type": "hello", "language": "en"})
        assert (await ws.receive_json(timeout=10))["type"] == "session"
        await ws.receive_json(timeout=10)
        await ws.send_json({"type": "message", "text": "Hello, I need help with my bill please", "client_id": "e-1"})
        assert (await until_ack(ws))[-1]["state"] == "queued"
        await ws.send_json({"type": "message", "text": "Please write to me.", "client_id": "e-2",
                            "callback": {"via": "email", "contact": "kim@example.org"}})
        frames = await until_ack(ws)
    told = [f["text"] for f in frames if f["type"] == "message" and f["author"] == "system"]
    assert len(told) == 1 and "kim@example.org" in told[0] and "e-mail" in told[0].lower(), told
    async with database.session() as s:
        h = await s.scalar(select(Handover).where(Handover.conversation_id == frames[-1]["conversation_id"]))
    assert h.resolution == "callback_requested" and h.context["callback"]["via"] == "email"
