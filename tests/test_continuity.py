"""Continue anywhere (issue 13): a web chat conversation moves to Telegram or WhatsApp with a
single-use code and goes on in the same state; bad codes are refused and change nothing; a signed
host identity links two browsers. One gateway per backend for the module (web chat, REST, Telegram
and WhatsApp against the local fake providers), with a small engine that runs a form per sender."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from connectors.fakes.telegram import FakeTelegram, start_update, text_update
from connectors.fakes.twilio import FakeTwilio
from handover.auth import create_agent, issue_api_token
from resonanz.app import DISPATCHER, create_app
from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Agent, ChannelIdentity, ContinueCode, Conversation, Customer, Handover, Message, utcnow
from tests.conftest import BACKENDS, TELEGRAM_SECRET, free_port, make_database_url, migrated_database
from tests.support.scripted_engine import ScriptedEngine, serve_engine
from tests.support.settle import until
from tests.support.webchat_client import connect, open_session, own_origin, until_ack

IDENTITY_SECRET = "host-site-secret-" + "x" * 16
BOT_USERNAME = "resonanz_test_bot"


class FormEngine(ScriptedEngine):
    """A meter-reading form per engine sender (the conversation): meter number, then reading."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self.done: list[tuple[str, dict[str, str]]] = []

    async def turn(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.turns.append(body)
        sender, text = body["sender"], body["message"]
        form = self.forms.get(sender)
        intent, loop = "greet", None
        if form is None and "zählerstand" in text.lower():
            self.forms[sender] = {}
            reply, intent, loop = "Wie lautet Ihre Zählernummer?", "report_reading", "meter_form"
        elif form is not None and "meter" not in form:
            form["meter"] = text
            reply, loop = "Und wie ist der Zählerstand?", "meter_form"
        elif form is not None:
            form["value"] = text
            del self.forms[sender]
            self.done.append((sender, form))
            reply = f"Danke, Zählerstand {form['value']} für Zähler {form['meter']} gespeichert."
        elif "mensch" in text.lower():
            reply, intent = "bot:request_human", "request_human"
        else:
            reply = "bot:greet"
        return web.json_response({
            "messages": [{"text": reply}],
            "parse_data": {"intent": {"name": intent, "confidence": 0.97}, "entities": []},
            "slots": dict(body["set_slots"]),
            "active_loop": loop,
        })


@dataclass
class Gateway:
    client: TestClient
    db: Database
    engine: FormEngine
    tg: FakeTelegram
    tw: FakeTwilio
    url: str

    async def settled(self) -> None:
        await self.client.app[DISPATCHER].settled()

    async def telegram(self, update: dict[str, Any]) -> None:
        status, _ = await self.tg.deliver_update(update, url=self.url + "/webhooks/telegram/webhook",
                                                 secret_token=TELEGRAM_SECRET)
        assert status == 200
        await self.settled()

    async def whatsapp(self, phone: str, text: str) -> None:
        status, _ = await self.tw.post_webhook(self.url + "/webhooks/whatsapp/webhook", self.tw.whatsapp_params(phone, text))
        assert status == 200
        await self.settled()

    async def rest(self, sender: str, text: str) -> dict:
        resp = await self.client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
        assert resp.status == 200, await resp.text()
        return await resp.json()

    async def code_for(self, token: str) -> dict:
        resp = await self.client.post("/webchat/continue", headers={"Authorization": f"Bearer {token}",
                                                                    "Origin": own_origin(self.client)})
        assert resp.status == 200, await resp.text()
        return await resp.json()

    def telegram_texts(self, chat: int, since: int) -> list[str]:
        return [str(c.params.get("text") or "") for c in self.tg.calls[since:]
                if c.method == "sendMessage" and str(c.params.get("chat_id")) == str(chat)]

    async def identity(self, channel: str, external_id: str) -> ChannelIdentity | None:
        async with self.db.session() as s:
            return await s.scalar(select(ChannelIdentity).where(ChannelIdentity.channel == channel,
                                                                ChannelIdentity.external_id == external_id))


@pytest_asyncio.fixture(scope="module", params=BACKENDS, loop_scope="session")
async def gw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    tmp = tmp_path_factory.mktemp("continuity")
    url, drop = await make_database_url(request.param, tmp)
    db = await migrated_database(url)
    engine = FormEngine()
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with FakeTelegram() as tg, FakeTwilio() as tw, serve_engine(engine) as engine_url:
        twilio = {"account_sid": tw.account_sid, "auth_token": tw.auth_token, "api_base_url": tw.base_url,
                  "public_url": public}
        settings = Settings(
            DATABASE_URL=url, engine_url=engine_url, var_dir=tmp, public_url=public,
            connectors=("rest", "webchat", "telegram", "whatsapp"),
            connector_options={
                "telegram": {"token": tg.token, "secret": TELEGRAM_SECRET, "api_base_url": tg.base_url,
                             "file_base_url": tg.base_file_url},
                "whatsapp": {**twilio, "from": "whatsapp:+4930123456", "template_sid": "HX" + "0" * 32},
            },
            outbox_backoff_base=0.05, outbox_backoff_max=1.0, offer_timeout=30,
            continue_telegram_bot=BOT_USERNAME, continue_limit="4/15minutes",
            webchat_identity_secret=IDENTITY_SECRET,
        )
        app = await create_app(settings, db=db)
        async with TestClient(TestServer(app, host="127.0.0.1", port=port)) as client:
            yield Gateway(client, db, engine, tg, tw, public)
    await db.dispose()
    await drop()


def chat_id() -> int:
    return random.randint(10**8, 10**9)


def phone() -> str:
    return "+49151" + "".join(random.choices("0123456789", k=8))


async def say(ws: aiohttp.ClientWebSocketResponse, text: str) -> list[dict]:
    """Send a web chat message; the frames up to its ack (the turn's replies come before it)."""
    await ws.send_json({"type": "message", "text": text, "client_id": secrets.token_hex(8)})
    return await until_ack(ws)


def texts_of(frames: list[dict]) -> str:
    return "\n".join(f.get("text", "") for f in frames if f["type"] == "message")


async def test_web_chat_to_telegram_mid_form_the_form_finishes_on_telegram_and_the_agent_reply_reaches_it(gw: Gateway) -> None:
    async with connect(gw.client) as ws:
        token, _ = await open_session(ws)
        assert "Zählernummer" in texts_of(await say(ws, "Ich möchte meinen Zählerstand melden"))
        frames = await say(ws, "12345678")
        assert "Zählerstand?" in texts_of(frames)
        conversation_id = frames[-1]["conversation_id"]
        offer = await gw.code_for(token)
    code = offer["code"]
    assert offer["links"]["telegram"] == f"https://t.me/{BOT_USERNAME}?start={code}"
    assert offer["links"]["whatsapp"].startswith("https://wa.me/4930123456?text=") and code in offer["links"]["whatsapp"]
    assert offer["links"]["browser"] == f"{gw.url}/chat?continue={code}"
    assert offer["qr"].startswith("data:image/svg+xml")
    async with gw.db.session() as s:  # only the hash is stored
        assert await s.scalar(select(ContinueCode.code_hash).where(ContinueCode.conversation_id == conversation_id)) \
            == hashlib.sha256(code.encode()).hexdigest()

    chat, since = chat_id(), len(gw.tg.calls)
    await gw.telegram(start_update(random.randint(1, 10**9), chat, payload=code))
    sent = gw.telegram_texts(chat, since)
    assert any("Willkommen zurück" in t for t in sent), sent
    assert sent[-1] == "Und wie ist der Zählerstand?"  # the form's open question, again
    since = len(gw.tg.calls)
    await gw.telegram(text_update(random.randint(1, 10**9), chat, "4711"))
    assert gw.telegram_texts(chat, since) == ["Danke, Zählerstand 4711 für Zähler 12345678 gespeichert."]
    # One engine conversation from the laptop to the phone: the same sender, the form's slots kept.
    assert gw.engine.done[-1] == (f"{conversation_id}-0", {"meter": "12345678", "value": "4711"})

    tg_identity = await gw.identity("telegram", str(chat))
    async with gw.db.session() as s:
        conv = await s.get(Conversation, conversation_id)
        web_identity = await s.scalar(select(ChannelIdentity).where(ChannelIdentity.channel == "webchat",
                                                                    ChannelIdentity.customer_id == conv.customer_id))
        assert tg_identity is not None and tg_identity.customer_id == conv.customer_id and web_identity is not None
        assert conv.channel == "telegram" and conv.address["recipient"] == str(chat)
        notes = (await s.scalars(select(Message.text).where(Message.conversation_id == conversation_id,
                                                            Message.direction == "note"))).all()
        assert any("telegram" in n and "webchat" in n for n in notes), notes
        stored = (await s.execute(select(Message.text, Message.metadata_).where(
            Message.conversation_id == conversation_id))).all()
        assert not any(code in text or code in str(meta) for text, meta in stored)  # the code is not kept

    # An agent takes the conversation over and answers: the reply goes to Telegram.
    agent = await create_agent(gw.db, email=f"a-{secrets.token_hex(4)}@example.org", password="ein-langes-passwort",
                               display_name="Jana Berger")
    auth = {"Authorization": f"Bearer {await issue_api_token(gw.db, agent.id)}"}
    resp = await gw.client.post(f"/api/v1/conversations/{conversation_id}/take-over", headers=auth)
    assert resp.status == 201, await resp.text()
    handover_id = (await resp.json())["handover"]["id"]
    since = len(gw.tg.calls)
    resp = await gw.client.post(f"/api/v1/handovers/{handover_id}/messages", json={"text": "Hallo, hier ist Jana."},
                                headers=auth)
    assert resp.status in (200, 201), await resp.text()
    await gw.tg.wait_for("sendMessage", lambda p: str(p.get("chat_id")) == str(chat)
                         and p.get("text") == "Hallo, hier ist Jana.", since=since)
    # The agent chooses the web chat for the next reply: it goes there, not to Telegram.
    resp = await gw.client.post(f"/api/v1/handovers/{handover_id}/channel", json={"identity_id": web_identity.id},
                                headers=auth)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"channel": "webchat", "identity_id": web_identity.id}
    since = len(gw.tg.calls)
    resp = await gw.client.post(f"/api/v1/handovers/{handover_id}/messages", json={"text": "Schauen Sie am Laptop."},
                                headers=auth)
    assert resp.status in (200, 201), await resp.text()
    async with gw.db.session() as s:
        sent = await s.scalar(select(Message).where(Message.conversation_id == conversation_id,
                                                    Message.text == "Schauen Sie am Laptop."))
        assert sent.channel == "webchat"
    assert "Schauen Sie am Laptop." not in gw.telegram_texts(chat, since)
    resp = await gw.client.post(f"/api/v1/handovers/{handover_id}/channel", json={"identity_id": 2**31 - 1}, headers=auth)
    assert resp.status == 404


async def test_web_chat_to_whatsapp_while_waiting_keeps_the_queue_place(gw: Gateway) -> None:
    first, last = f"rest-{secrets.token_hex(4)}", f"rest-{secrets.token_hex(4)}"
    await gw.rest(first, "Ich möchte mit einem Menschen sprechen")
    async with connect(gw.client) as ws:
        token, _ = await open_session(ws)
        frames = await say(ws, "Ich möchte mit einem Menschen sprechen")
        conversation_id = frames[-1]["conversation_id"]
        assert frames[-1]["state"] == "queued"
        await gw.rest(last, "Ich möchte mit einem Menschen sprechen")
        offer = await gw.code_for(token)

    async def waiting() -> list[Handover]:
        async with gw.db.session() as s:
            return list((await s.scalars(select(Handover).where(Handover.status.in_(("waiting", "offered")))
                                         .order_by(Handover.created_at, Handover.id))).all())

    before = await waiting()
    mine = next(h for h in before if h.conversation_id == conversation_id)
    number = phone()
    prefilled = unquote(offer["links"]["whatsapp"].split("text=", 1)[1])
    await gw.whatsapp(number, prefilled)
    welcome = await gw.tw.wait_for_message(lambda m: m["To"] == f"whatsapp:{number}")
    assert "Willkommen zurück" in welcome["Body"]
    after = await waiting()
    assert [h.id for h in after] == [h.id for h in before]  # the same place in the same queue
    again = next(h for h in after if h.id == mine.id)
    assert (again.conversation_id, again.status, again.created_at) == (conversation_id, mine.status, mine.created_at)
    async with gw.db.session() as s:
        conv = await s.get(Conversation, conversation_id)
        assert conv.state == "queued" and conv.channel == "whatsapp"
    # The next WhatsApp message is part of the same waiting conversation (no bot answer).
    turns = len(gw.engine.turns)
    await gw.whatsapp(number, "Ich warte noch")
    async with gw.db.session() as s:
        last_in = await s.scalar(select(Message).where(Message.channel == "whatsapp", Message.sender_id == number)
                                 .order_by(Message.id.desc()).limit(1))
        assert last_in.conversation_id == conversation_id and last_in.text == "Ich warte noch"
    assert len(gw.engine.turns) == turns


async def test_expired_reused_and_guessed_codes_are_refused_and_change_nothing(gw: Gateway) -> None:
    async with connect(gw.client) as ws:
        token, _ = await open_session(ws)
        conversation_id = (await say(ws, "Hallo"))[-1]["conversation_id"]
        used = (await gw.code_for(token))["code"]
        expired = (await gw.code_for(token))["code"]
    async with gw.db.session() as s:
        await s.execute(update(ContinueCode).where(ContinueCode.code_hash == hashlib.sha256(expired.encode()).hexdigest())
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    owner = chat_id()
    await gw.telegram(start_update(random.randint(1, 10**9), owner, payload=used))
    async with gw.db.session() as s:
        conv = await s.get(Conversation, conversation_id)
        state = (conv.customer_id, conv.channel, dict(conv.address), conv.state)

    async def refused(code: str, words: str) -> None:
        chat, since = chat_id(), len(gw.tg.calls)
        await gw.telegram(start_update(random.randint(1, 10**9), chat, payload=code))
        sent = gw.telegram_texts(chat, since)
        assert any(words in t for t in sent), sent
        identity = await gw.identity("telegram", str(chat))
        async with gw.db.session() as s:
            conv = await s.get(Conversation, conversation_id)
            assert (conv.customer_id, conv.channel, dict(conv.address), conv.state) == state  # nothing changed
            assert identity is None or identity.customer_id != conv.customer_id

    await refused(used, "schon benutzt")
    await refused(expired, "abgelaufen")
    await refused("rz" + secrets.token_urlsafe(12), "kenne ich nicht")
    # Guessing is rate-limited per sender (continue_limit 4 per 15 minutes here), and even the
    # right code is refused once over the limit.
    guesser, since = phone(), len(gw.tw.messages)
    async with connect(gw.client) as ws:
        token, _ = await open_session(ws)
        await say(ws, "Hallo")
        good = (await gw.code_for(token))["code"]
    for _ in range(4):
        await gw.whatsapp(guesser, "Gespräch fortsetzen: rz" + secrets.token_urlsafe(12))
    await gw.whatsapp(guesser, f"Gespräch fortsetzen: {good}")
    await until(lambda: len([m for m in gw.tw.messages[since:] if m["To"] == f"whatsapp:{guesser}"]) >= 5,
                "five answers to the guesser", timeout=10)
    bodies = [m["Body"] for m in gw.tw.messages[since:] if m["To"] == f"whatsapp:{guesser}"]
    assert sum("kenne ich nicht" in b for b in bodies) == 4 and "Zu viele Versuche" in bodies[-1], bodies


def sign(user_id: str, secret: str = IDENTITY_SECRET) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


async def test_a_signed_host_identity_links_two_browsers_and_a_bad_signature_is_refused(gw: Gateway) -> None:
    user = f"shop-user-{secrets.token_hex(4)}"
    identity = {"user_id": user, "signature": sign(user)}
    conversations, sessions = [], []
    for text in ("Hallo vom Laptop", "Hallo vom Telefon"):
        async with connect(gw.client) as ws:
            await ws.send_json({"type": "hello", "language": "de", "identity": identity})
            issued = await ws.receive_json(timeout=10)
            assert issued["type"] == "session", issued
            await ws.receive_json(timeout=10)  # history
            ack = (await say(ws, text))[-1]
            conversations.append(ack["conversation_id"])
    assert conversations[0] == conversations[1]  # the second browser continues the first's conversation
    async with gw.db.session() as s:
        owners = set((await s.scalars(select(ChannelIdentity.customer_id).where(
            ChannelIdentity.channel == "webchat", ChannelIdentity.customer_key == f"host:{user}"))).all())
        assert len(owners) == 1
    async with connect(gw.client) as ws:
        await ws.send_json({"type": "hello", "language": "de",
                            "identity": {"user_id": user, "signature": sign(user, "wrong-secret")}})
        frame = await ws.receive_json(timeout=10)
        assert frame["type"] == "error" and frame["code"] == "identity_invalid"
        await ws.send_json({"type": "message", "text": "Hallo", "client_id": "x1"})
        frame = await ws.receive_json(timeout=10)
        assert frame["type"] == "error" and "hello" in frame["error"]  # no session was opened


async def test_a_code_needs_the_session_token(gw: Gateway) -> None:
    resp = await gw.client.post("/webchat/continue", headers={"Authorization": "Bearer " + "a" * 43,
                                                              "Origin": own_origin(gw.client)})
    assert resp.status == 401
    resp = await gw.client.post("/webchat/continue", headers={"Origin": "https://evil.example"})
    assert resp.status == 403


async def test_an_admin_merges_two_customers_and_splits_an_identity_off_again_both_audited(gw: Gateway) -> None:
    web_sender, tg_chat = f"rest-{secrets.token_hex(4)}", chat_id()
    await gw.rest(web_sender, "Hallo")
    await gw.telegram(text_update(random.randint(1, 10**9), tg_chat, "Hallo"))
    rest_identity, tg_identity = await gw.identity("rest", web_sender), await gw.identity("telegram", str(tg_chat))
    survivor, merged = rest_identity.customer_id, tg_identity.customer_id
    assert survivor != merged
    admin = await create_agent(gw.db, email=f"admin-{secrets.token_hex(4)}@example.org", password="ein-langes-passwort",
                               display_name="Ada Admin", role="admin")
    agent = await create_agent(gw.db, email=f"agent-{secrets.token_hex(4)}@example.org", password="ein-langes-passwort",
                               display_name="Udo Agent")
    as_admin = {"Authorization": f"Bearer {await issue_api_token(gw.db, admin.id)}"}
    as_agent = {"Authorization": f"Bearer {await issue_api_token(gw.db, agent.id)}"}
    # An agent who handled neither customer may not merge them.
    resp = await gw.client.post(f"/api/v1/customers/{survivor}/merge", json={"merged_id": merged}, headers=as_agent)
    assert resp.status == 403
    resp = await gw.client.post(f"/api/v1/customers/{survivor}/merge", json={"merged_id": merged}, headers=as_admin)
    assert resp.status == 200, await resp.text()
    body = (await resp.json())["customer"]
    assert body["id"] == survivor and {i["channel"] for i in body["identities"]} == {"rest", "telegram"}
    async with gw.db.session() as s:
        assert set((await s.scalars(select(Conversation.customer_id).where(Conversation.customer_id.in_((survivor, merged))))).all()) == {survivor}
        assert await s.scalar(select(Message.id).where(Message.customer_id == merged).limit(1)) is None
    # Telegram's next message lands with the survivor.
    await gw.telegram(text_update(random.randint(1, 10**9), tg_chat, "Noch da?"))
    assert (await gw.identity("telegram", str(tg_chat))).customer_id == survivor
    # Split the Telegram identity off again: a new customer; the survivor keeps REST.
    resp = await gw.client.post(f"/api/v1/customers/{survivor}/split", json={"identity_id": tg_identity.id}, headers=as_admin)
    assert resp.status == 200, await resp.text()
    split = await resp.json()
    new_id = split["new_customer"]["id"]
    assert [i["channel"] for i in split["customer"]["identities"]] == ["rest"]
    assert [i["id"] for i in split["new_customer"]["identities"]] == [tg_identity.id] and new_id not in (survivor, merged)
    assert (await gw.identity("telegram", str(tg_chat))).customer_id == new_id
    async with gw.db.session() as s:  # the survivor's open conversations answer on REST again
        for conv in (await s.scalars(select(Conversation).where(Conversation.customer_id == survivor,
                                                                 Conversation.state != "closed"))).all():
            assert conv.channel == "rest"
    resp = await gw.client.post(f"/api/v1/customers/{survivor}/split", json={"identity_id": rest_identity.id},
                                headers=as_admin)
    assert resp.status == 409  # the only identity stays
    audit = (await (await gw.client.get("/api/v1/audit", headers=as_admin)).json())["entries"]
    mine = [(e["action"], e["customer_id"], e["subject"], e["actor_id"]) for e in audit if e["customer_id"] == survivor]
    assert ("merge", survivor, merged, admin.id) in mine and ("split", survivor, new_id, admin.id) in mine


async def test_the_agent_who_served_the_customer_on_the_web_is_offered_first_on_telegram(gw: Gateway) -> None:
    async def agent(name: str) -> tuple[str, dict[str, str]]:
        a = await create_agent(gw.db, email=f"{name}-{secrets.token_hex(4)}@example.org", password="ein-langes-passwort",
                               display_name=name, capacity=5)
        return a.id, {"Authorization": f"Bearer {await issue_api_token(gw.db, a.id)}"}

    async def status(headers: dict[str, str], value: str) -> None:
        resp = await gw.client.put("/api/v1/me/status", json={"status": value}, headers=headers)
        assert resp.status == 200, await resp.text()

    async def offered(conversation_id: str) -> Handover:
        async def ready() -> bool:
            async with gw.db.session() as s:
                h = await s.scalar(select(Handover).where(Handover.conversation_id == conversation_id,
                                                          Handover.status == "offered"))
                return h is not None
        await until(ready, "an offer", timeout=10)
        async with gw.db.session() as s:
            return await s.scalar(select(Handover).where(Handover.conversation_id == conversation_id,
                                                         Handover.status == "offered"))

    first_id, first = await agent("Anna")
    other_id, other = await agent("Bert")
    await status(first, "online")
    try:
        async with connect(gw.client) as ws:
            token, _ = await open_session(ws)
            conversation_id = (await say(ws, "Ich möchte mit einem Menschen sprechen"))[-1]["conversation_id"]
            handover = await offered(conversation_id)
            assert handover.offered_agent_id == first_id
            assert (await gw.client.post(f"/api/v1/handovers/{handover.id}/accept", headers=first)).status == 200
            resp = await gw.client.post(f"/api/v1/handovers/{handover.id}/close", headers=first,
                                        json={"resolution": "solved", "return_to_bot": True})
            assert resp.status == 200, await resp.text()
            code = (await gw.code_for(token))["code"]
        # Bert is online too and would be next by load and last activity; Anna served this customer.
        await status(other, "online")
        async with gw.db.session() as s:
            await s.execute(update(Agent).where(Agent.id == other_id).values(last_seen_at=None))
        chat = chat_id()
        await gw.telegram(start_update(random.randint(1, 10**9), chat, payload=code))
        await gw.telegram(text_update(random.randint(1, 10**9), chat, "Ich möchte mit einem Menschen sprechen"))
        again = await offered(conversation_id)
        assert again.id != handover.id and again.offered_agent_id == first_id
    finally:
        await status(first, "offline")
        await status(other, "offline")


async def test_continue_on_my_phone_in_words_then_greeted_by_name_and_the_preference_forgotten(gw: Gateway) -> None:
    chat, since = chat_id(), len(gw.tg.calls)
    await gw.telegram(text_update(random.randint(1, 10**9), chat, "Hallo", first_name="Erika"))
    await gw.telegram(text_update(random.randint(1, 10**9), chat, "Kann ich auf dem Handy weitermachen?"))
    offer = gw.telegram_texts(chat, since)[-1]
    found = re.search(r"Code: (rz[A-Za-z0-9_-]{16})", offer)
    assert found and f"https://t.me/{BOT_USERNAME}?start={found.group(1)}" in offer and "wa.me/4930123456" in offer, offer
    number = phone()
    await gw.whatsapp(number, f"Gespräch fortsetzen: {found.group(1)}")
    tg, wa = await gw.identity("telegram", str(chat)), await gw.identity("whatsapp", number)
    assert tg.customer_id == wa.customer_id
    async with gw.db.session() as s:
        customer = await s.get(Customer, tg.customer_id)
        assert customer.preferred_channel == "whatsapp"
        customer.preference = "human"
    await gw.whatsapp(number, "Bitte vergiss meine Präferenz")
    await gw.tw.wait_for_message(lambda m: m["To"] == f"whatsapp:{number}" and "gelöscht" in m["Body"])
    async with gw.db.session() as s:
        customer = await s.get(Customer, tg.customer_id)
        assert (customer.preference, customer.preferred_channel) == (None, None)
        await s.execute(update(Conversation).where(Conversation.customer_id == customer.id).values(
            state="closed", closed_at=utcnow()))
    # A new conversation of the linked customer opens with their name, in their language.
    since = len(gw.tg.calls)
    await gw.telegram(text_update(random.randint(1, 10**9), chat, "Hallo"))
    assert "Willkommen zurück, Erika!" in gw.telegram_texts(chat, since)


async def test_an_anonymous_browser_that_signs_in_later_joins_the_signed_users_customer(gw: Gateway) -> None:
    user = f"shop-user-{secrets.token_hex(4)}"
    identity = {"user_id": user, "signature": sign(user)}
    async with connect(gw.client) as ws:  # the user's laptop, signed in
        await ws.send_json({"type": "hello", "language": "de", "identity": identity})
        await ws.receive_json(timeout=10)
        await ws.receive_json(timeout=10)
        signed_conversation = (await say(ws, "Hallo vom Laptop"))[-1]["conversation_id"]
    async with connect(gw.client) as ws:  # the phone: first anonymous, then signed in
        token, _ = await open_session(ws)
        anonymous = (await say(ws, "Hallo anonym"))[-1]["conversation_id"]
        assert anonymous != signed_conversation
        await ws.send_json({"type": "hello", "token": token, "language": "de", "identity": identity})
        await ws.receive_json(timeout=10)  # history
        assert (await say(ws, "Jetzt angemeldet"))[-1]["conversation_id"] == signed_conversation


async def test_the_console_shows_each_identity_with_its_address_and_how_it_was_verified(gw: Gateway) -> None:
    user = f"shop-user-{secrets.token_hex(4)}"
    async with connect(gw.client) as ws:  # signed in on the shop's site
        await ws.send_json({"type": "hello", "language": "de", "identity": {"user_id": user, "signature": sign(user)}})
        token = (await ws.receive_json(timeout=10))["token"]
        await ws.receive_json(timeout=10)  # history
        conversation_id = (await say(ws, "Hallo"))[-1]["conversation_id"]
        code = (await gw.code_for(token))["code"]
    chat, rest_sender = chat_id(), f"rest-{secrets.token_hex(4)}"
    await gw.telegram(start_update(random.randint(1, 10**9), chat, payload=code))  # continued on the phone
    async with gw.db.session() as s:
        customer_id = (await s.get(Conversation, conversation_id)).customer_id
    await gw.rest(rest_sender, "Hallo")  # someone else, merged by hand below: not verified
    rest_customer = (await gw.identity("rest", rest_sender)).customer_id
    admin = await create_agent(gw.db, email=f"admin-{secrets.token_hex(4)}@example.org", password="ein-langes-passwort",
                               display_name="Ada Admin", role="admin")
    auth = {"Authorization": f"Bearer {await issue_api_token(gw.db, admin.id)}"}
    resp = await gw.client.post(f"/api/v1/customers/{customer_id}/merge", json={"merged_id": rest_customer}, headers=auth)
    assert resp.status == 200, await resp.text()

    def shown(identities: list[dict]) -> dict[str, tuple[str | None, str | None, bool]]:
        return {i["channel"]: (i["label"], i["verified_by"], i["verified_at"] is not None) for i in identities}

    expected = {"webchat": (user, "signed_identity", True), "telegram": (str(chat), "continue_code", True),
                "rest": (rest_sender, None, False)}
    resp = await gw.client.get(f"/api/v1/customers/{customer_id}", headers=auth)
    assert resp.status == 200, await resp.text()
    assert shown((await resp.json())["customer"]["identities"]) == expected
    resp = await gw.client.post(f"/api/v1/conversations/{conversation_id}/take-over", headers=auth)
    assert resp.status == 201, await resp.text()
    detail = await (await gw.client.get(f"/api/v1/handovers/{(await resp.json())['handover']['id']}", headers=auth)).json()
    assert shown(detail["identities"]) == expected
    # Split off as wrongly linked, the Telegram identity is no longer verified (as anyone's).
    telegram_id = next(i["id"] for i in detail["identities"] if i["channel"] == "telegram")
    resp = await gw.client.post(f"/api/v1/customers/{customer_id}/split", json={"identity_id": telegram_id}, headers=auth)
    assert resp.status == 200, await resp.text()
    assert shown((await resp.json())["new_customer"]["identities"]) == {"telegram": (str(chat), None, False)}


def with_username(update: dict[str, Any], username: str) -> dict[str, Any]:
    """A private chat's update as Telegram sends it for a user who has a user name."""
    message = update["message"]
    return {**update, "message": {**message, "from": {**message["from"], "username": username},
                                  "chat": {**message["chat"], "username": username}}}


async def test_a_telegram_identity_is_shown_by_its_username_and_by_its_chat_id_without_one(gw: Gateway) -> None:
    admin = await create_agent(gw.db, email=f"admin-{secrets.token_hex(4)}@example.org", password="ein-langes-passwort",
                               display_name="Ada Admin", role="admin")
    auth = {"Authorization": f"Bearer {await issue_api_token(gw.db, admin.id)}"}

    async def label(chat: int) -> str | None:
        customer_id = (await gw.identity("telegram", str(chat))).customer_id
        resp = await gw.client.get(f"/api/v1/customers/{customer_id}", headers=auth)
        assert resp.status == 200, await resp.text()
        [identity] = (await resp.json())["customer"]["identities"]
        return identity["label"]

    named, plain = chat_id(), chat_id()
    await gw.telegram(with_username(text_update(random.randint(1, 10**9), named, "Hallo"), "erika_m"))
    await gw.telegram(text_update(random.randint(1, 10**9), plain, "Hallo"))
    assert (await label(named), await label(plain)) == ("@erika_m", str(plain))
    # The user name follows the customer's latest message: changed, then removed.
    await gw.telegram(with_username(text_update(random.randint(1, 10**9), named, "Noch da"), "erika_mustermann"))
    assert await label(named) == "@erika_mustermann"
    await gw.telegram(text_update(random.randint(1, 10**9), named, "Und jetzt?"))
    assert await label(named) == str(named)
    # Replies still go to the chat id.
    since = len(gw.tg.calls)
    await gw.telegram(with_username(text_update(random.randint(1, 10**9), named, "Hallo"), "erika_m"))
    assert gw.telegram_texts(named, since)
    # A customer without a name is listed by the user name.
    nameless = chat_id()
    await gw.telegram(with_username(text_update(random.randint(1, 10**9), nameless, "Hallo", first_name=""), "ohne_name"))
    async with gw.db.session() as s:
        conversation_id = await s.scalar(select(Conversation.id).join(Customer, Customer.id == Conversation.customer_id)
                                         .join(ChannelIdentity, ChannelIdentity.customer_id == Customer.id)
                                         .where(ChannelIdentity.external_id == str(nameless)))
    resp = await gw.client.post(f"/api/v1/conversations/{conversation_id}/take-over", headers=auth)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["handover"]["customer"]["display"] == "@ohne_name"
