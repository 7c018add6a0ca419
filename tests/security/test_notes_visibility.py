"""Internal notes (an agent's note, the note written with a transfer, system notes such as the
opted-out note) never reach a customer: not through the web chat history, not live, not through
the REST channel, not through the outbox. Engine: a small scripted fake; everything else is real."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.dispatcher import StoredMessage
from bot.visibility import InternalMessageError, outbound_of
from resonanz.app import DISPATCHER, create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Message
from tests.support.scripted_engine import ScriptedEngine, serve_engine
from tests.support.desk import Desk
from tests.support.webchat_client import connect, hello, open_session, until_ack

NOTE = "INTERN-Kulanz-pruefen-7731"
TRANSFER_NOTE = "INTERN-Vertragsfrage-4410"


@dataclass
class World(Desk):
    app: web.Application = None  # type: ignore[assignment]


@pytest_asyncio.fixture(loop_scope="session")
async def world(database: Database, tmp_path) -> AsyncIterator[World]:  # noqa: ANN001
    engine = ScriptedEngine()
    async with serve_engine(engine) as engine_url:
        settings = Settings(DATABASE_URL=database.url, engine_url=engine_url,
                            connectors=("rest", "webchat"), var_dir=tmp_path, offer_timeout=30)
        app = await create_app(settings, db=database)
        async with TestClient(TestServer(app)) as client:
            yield World(client, database, engine, app)


async def _accept_note_transfer(world: World, conversation_id: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """An agent accepts, replies, writes a note and transfers with a note to a second agent."""
    await world.agent("eva@x.de", status="away")
    kim = await world.agent("kim@x.de", status="online")
    eva_auth, kim_auth = await world.login("eva@x.de"), await world.login("kim@x.de")
    hid = (await world.handover_of(conversation_id)).id
    assert (await world.client.post(f"/api/v1/handovers/{hid}/accept", headers=eva_auth)).status == 200
    resp = await world.client.post(f"/api/v1/handovers/{hid}/messages", json={"text": "Guten Tag, ich helfe gern."}, headers=eva_auth)
    assert resp.status == 201
    resp = await world.client.post(f"/api/v1/handovers/{hid}/notes", json={"text": NOTE}, headers=eva_auth)
    assert resp.status == 201
    resp = await world.client.post(f"/api/v1/handovers/{hid}/transfer", json={"agent_id": kim["id"], "note": TRANSFER_NOTE},
                                   headers=eva_auth)
    assert resp.status == 200
    return hid, eva_auth, kim_auth


def _secret_free(texts: list[str]) -> None:
    assert not [t for t in texts if NOTE in t or TRANSFER_NOTE in t], texts


async def test_web_chat_history_and_live_frames_carry_no_note(world: World) -> None:
    async with connect(world.client) as ws:
        token, _history = await open_session(ws)
        await ws.send_json({"type": "message", "text": "Ich will einen Menschen sprechen", "client_id": "c-1"})
        ack = (await until_ack(ws))[-1]
        assert ack["state"] == "queued"
        hid, _eva, kim_auth = await _accept_note_transfer(world, ack["conversation_id"])
        resp = await world.client.post(f"/api/v1/handovers/{hid}/messages", json={"text": "Hier ist Kim."}, headers=kim_auth)
        assert resp.status == 201
        live = []
        while not live or live[-1].get("text") != "Hier ist Kim.":
            live.append(await ws.receive_json(timeout=10))
        _secret_free([f.get("text", "") for f in live])
    async with connect(world.client) as ws:  # a reload
        history = await hello(ws, token)
    texts = [m["text"] for m in history["messages"]]
    assert "Guten Tag, ich helfe gern." in texts and "Hier ist Kim." in texts
    _secret_free(texts)
    assert {m["direction"] for m in history["messages"]} <= {"in", "out"}


async def test_the_customer_facing_read_returns_no_note_on_any_channel(world: World) -> None:
    r = await world.customer("rita", "Ich will einen Menschen sprechen")
    await _accept_note_transfer(world, r["conversation_id"])
    history = await world.app[DISPATCHER].history("rest", "rita")
    assert history is not None
    assert {m.direction for m in history.messages} <= {"in", "out"}
    _secret_free([m.text for m in history.messages])
    assert "Guten Tag, ich helfe gern." in [m.text for m in history.messages]
    _secret_free([m["text"] for m in await world.outbound("rita")])
    # The notes are still there for the agents.
    async with world.db.session() as s:
        from sqlalchemy import select

        notes = (await s.scalars(select(Message.text).where(Message.direction == "note"))).all()
    assert NOTE in notes and any(TRANSFER_NOTE in n for n in notes)


def test_a_note_cannot_become_a_customer_message() -> None:
    with pytest.raises(ValueError, match="internal"):
        StoredMessage(message_id="m1", direction="note", author="agent", text=NOTE, buttons=(), attachments=(),
                      created_at=None, status="internal")
    note = Message(public_id="m2", direction="note", author="agent", text=NOTE, buttons=[], attachments=[])
    with pytest.raises(InternalMessageError):
        outbound_of(note)
    inbound = Message(public_id="m3", direction="in", author="customer", text="hi", buttons=[], attachments=[])
    with pytest.raises(InternalMessageError):
        outbound_of(inbound)  # only an outbound row is sendable
    out = Message(public_id="m4", direction="out", author="agent", text="Hallo", buttons=[], attachments=[])
    assert outbound_of(out).text == "Hallo"
