"""Telegram, WhatsApp and SMS end to end: the real gateway, the real trained engine, and local fake
providers driven by the real python-telegram-bot and twilio clients. SQLite and PostgreSQL."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update

from bot.reference.demo_data import demo_account
from handover.auth import create_agent, issue_api_token
from resonanz.app import DISPATCHER
from bot.reference.models import MeterReading
from resonanz.store.models import ChannelIdentity, Conversation, Customer, Handover, Message, utcnow
from tests.conftest import TELEGRAM_SECRET, LiveGateway
from connectors.fakes.telegram import (
    FakeTelegram,
    callback_update,
    document_update,
    location_update,
    photo_update,
    start_update,
    text_update,
)
from connectors.fakes.twilio import FakeTwilio
from tests.support.channels import conversation_of, new_id, new_phone, sent_to, tg_send, tg_texts, twilio_post

pytestmark = pytest.mark.engine

async def agent_client(gw: LiveGateway) -> tuple[aiohttp.ClientSession, str]:
    email = f"agent-{secrets.token_hex(4)}@stadtwerke.example"
    agent = await create_agent(gw.db, email=email, password="ein-langes-passwort", display_name="Jana Berger",
                               capacity=100, skills=("general", "contracts", "sales", "complaints"))
    token = await issue_api_token(gw.db, agent.id)
    return aiohttp.ClientSession(gw.url, headers={"Authorization": f"Bearer {token}"}), agent.id


async def handover_of(gw: LiveGateway, conversation_id: str) -> str:
    async with gw.db.session() as s:
        hid = await s.scalar(select(Handover.id).where(Handover.conversation_id == conversation_id)
                             .order_by(Handover.created_at.desc()).limit(1))
    assert hid is not None
    return hid


# --- Telegram ----------------------------------------------------------------------------------


async def test_telegram_customer_completes_a_meter_reading_with_inline_buttons(
    live_gateway: LiveGateway, fake_telegram: FakeTelegram
) -> None:
    gw, tg, chat = live_gateway, fake_telegram, new_id()
    acc = demo_account("40045678")
    since = len(tg.calls)
    assert await tg_send(gw, tg, start_update(new_id(), chat, payload="flyer-2026", first_name="Erika")) == 200
    # The welcome comes with the choice as an inline keyboard.
    keyboard = await tg.wait_for("sendMessage", lambda p: p.get("chat_id") == chat and p.get("reply_markup"), since=since)
    buttons = {b["text"]: b["callback_data"] for row in keyboard.params["reply_markup"]["inline_keyboard"] for b in row}
    assert "Selbst erledigen" in buttons and "Mit einer Person sprechen" in buttons
    # Pressing "Selbst erledigen": the callback is answered (the button stops spinning).
    query_id = f"cb-{new_id()}"
    assert await tg_send(gw, tg, callback_update(new_id(), chat, buttons["Selbst erledigen"], 1, callback_query_id=query_id)) == 200
    assert query_id in tg.answered_callbacks
    since = len(tg.calls)
    assert await tg_send(gw, tg, text_update(new_id(), chat, "Ich möchte meinen Zählerstand melden")) == 200
    assert "Kundennummer" in tg_texts(tg, chat, since)
    since = len(tg.calls)
    assert await tg_send(gw, tg, text_update(new_id(), chat, acc.customer_number)) == 200
    assert "Zählernummer" in tg_texts(tg, chat, since)  # step-up verification first
    since = len(tg.calls)
    assert await tg_send(gw, tg, text_update(new_id(), chat, acc.meter_number[-4:])) == 200
    assert "Zählerstand" in tg_texts(tg, chat, since)
    async with gw.db.session() as s:
        before = (await s.scalars(select(MeterReading.value).where(MeterReading.customer_number == acc.customer_number))).all()
        last = max([acc.last_reading, *before])
    # Plausible even right after another test's reading on this account (the margin is 250 kWh).
    new = last + 121
    since = len(tg.calls)
    assert await tg_send(gw, tg, text_update(new_id(), chat, f"{new}")) == 200
    assert str(new) in tg_texts(tg, chat, since).replace(".", "")
    conv = await conversation_of(gw, "telegram", str(chat))
    async with gw.db.session() as s:
        after = (await s.scalars(select(MeterReading.value).where(MeterReading.customer_number == acc.customer_number))).all()
        assert after == [*before, new]
        customer = await s.get(Customer, conv.customer_id)
        assert customer.name == "Erika" and conv.language == "de"
        first = await s.scalar(select(Message).where(Message.conversation_id == conv.id, Message.direction == "in")
                               .order_by(Message.id).limit(1))
        assert first.metadata_["start_payload"] == "flyer-2026"


async def test_telegram_english_language_code_and_photos_both_ways(
    live_gateway: LiveGateway, fake_telegram: FakeTelegram
) -> None:
    gw, tg, chat = live_gateway, fake_telegram, new_id()
    assert await tg_send(gw, tg, text_update(new_id(), chat, "I want to talk to a human", first_name="John",
                                             language_code="en-GB")) == 200
    conv = await conversation_of(gw, "telegram", str(chat))
    assert conv.state == "queued" and conv.language == "en"
    # The customer sends a photo of the meter: downloaded through the Bot API and stored.
    picture = b"\xff\xd8\xff\xe0" + secrets.token_bytes(64)
    tg.add_file("meter-photo", picture, "photos/meter.jpg")
    assert await tg_send(gw, tg, photo_update(new_id(), chat, "meter-photo", caption="my meter")) == 200
    async with gw.db.session() as s:
        msg = await s.scalar(select(Message).where(Message.conversation_id == conv.id, Message.direction == "in")
                             .order_by(Message.id.desc()).limit(1))
        [att] = msg.attachments
    assert att["kind"] == "image" and "/media/" in att["url"]
    media_path = "/media/" + att["url"].rsplit("/", 1)[1]
    async with aiohttp.ClientSession() as http, http.get(gw.url + media_path) as r:
        assert r.status == 401  # what a customer sent is for logged-in agents only
    # An agent answers with a picture: it reaches Telegram as an uploaded photo with the caption.
    client, _ = await agent_client(gw)
    async with client:
        async with client.get(media_path) as r:
            assert r.status == 200 and await r.read() == picture and r.content_type == "image/jpeg"
        hid = await handover_of(gw, conv.id)
        assert (await client.post(f"/api/v1/handovers/{hid}/accept")).status == 200
        form = aiohttp.FormData()
        form.add_field("text", "Here is where the meter number is printed")
        form.add_field("image", b"\x89PNG\r\n\x1a\n" + b"0" * 32, filename="hint.png", content_type="image/png")
        since = len(tg.calls)
        resp = await client.post(f"/api/v1/handovers/{hid}/messages", data=form)
        assert resp.status == 201, await resp.text()
        assert (await resp.json())["message"]["status"] == "sent"
    photo = await tg.wait_for("sendPhoto", lambda p: p.get("chat_id") == chat, since=since)
    assert photo.params["caption"] == "Here is where the meter number is printed"
    assert photo.params["photo"].content.startswith(b"\x89PNG")


async def test_telegram_secret_is_checked_and_updates_are_stored_once(
    live_gateway: LiveGateway, fake_telegram: FakeTelegram
) -> None:
    gw, tg, chat = live_gateway, fake_telegram, new_id()
    update = text_update(new_id(), chat, "Hallo")
    assert await tg_send(gw, tg, update, secret="wrong-secret") == 403
    assert await tg_send(gw, tg, update, secret=None) == 403
    async with gw.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(ChannelIdentity).where(
            ChannelIdentity.channel == "telegram", ChannelIdentity.external_id == str(chat))) == 0
    assert await tg_send(gw, tg, update) == 200
    assert await tg_send(gw, tg, update) == 200  # Telegram re-delivers when unsure
    conv = await conversation_of(gw, "telegram", str(chat))
    async with gw.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == conv.id, Message.direction == "in")) == 1


# --- WhatsApp ----------------------------------------------------------------------------------


async def test_whatsapp_customer_reaches_an_agent_whose_answer_arrives_on_whatsapp(
    live_gateway: LiveGateway, fake_twilio: FakeTwilio
) -> None:
    gw, tw, phone = live_gateway, fake_twilio, new_phone()
    status, _ = await twilio_post(gw, tw, "whatsapp", tw.whatsapp_params(phone, "Ich möchte mit einem Mitarbeiter sprechen",
                                                                          profile_name="Max Mustermann"))
    assert status == 200
    conv = await conversation_of(gw, "whatsapp", phone)
    assert conv.state == "queued"
    notice = await tw.wait_for_message(lambda m: m["To"] == f"whatsapp:{phone}")
    assert notice["From"] == "whatsapp:+4930123456" and "verbinde" in notice["Body"]
    client, _ = await agent_client(gw)
    async with client:
        hid = await handover_of(gw, conv.id)
        assert (await client.post(f"/api/v1/handovers/{hid}/accept")).status == 200
        resp = await client.post(f"/api/v1/handovers/{hid}/messages", json={"text": "Guten Tag, hier ist Jana. Wie kann ich helfen?"})
        assert resp.status == 201
        body = await resp.json()
        assert body["message"]["status"] == "sent"
    reply = await tw.wait_for_message(lambda m: m["To"] == f"whatsapp:{phone}" and m["Body"].startswith("Guten Tag, hier ist Jana"))
    assert reply["From"] == "whatsapp:+4930123456"
    assert reply["StatusCallback"] == f"{gw.url}/webhooks/whatsapp/status"
    assert len([m for m in sent_to(tw, f"whatsapp:{phone}") if m["Body"].startswith("Guten Tag, hier ist Jana")]) == 1
    # The provider reports the message read; later a failed message shows its reason to the agent.
    status, _ = await tw.post_webhook(f"{gw.url}/webhooks/whatsapp/status", tw.status_params(reply["sid"], "read"))
    assert status == 200
    async with gw.db.session() as s:
        row = await s.scalar(select(Message).where(Message.provider_message_id == reply["sid"]))
        assert row.status == "read"
    forged_headers, body_text = tw.signed_webhook(f"{gw.url}/webhooks/whatsapp/status", tw.status_params(reply["sid"], "failed", 30008))
    forged_headers["X-Twilio-Signature"] = "Zm9yZ2Vk"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gw.url}/webhooks/whatsapp/status", data=body_text, headers=forged_headers) as r:
            assert r.status == 403
    status, _ = await tw.post_webhook(f"{gw.url}/webhooks/whatsapp/status", tw.status_params(reply["sid"], "undelivered", 30008))
    assert status == 200
    async with gw.db.session() as s:
        row = await s.scalar(select(Message).where(Message.provider_message_id == reply["sid"]))
        assert row.status == "failed" and "30008" in row.error


async def test_whatsapp_outside_the_24_hour_window_uses_the_template(
    live_gateway: LiveGateway, fake_twilio: FakeTwilio
) -> None:
    gw, tw, phone = live_gateway, fake_twilio, new_phone()
    assert (await twilio_post(gw, tw, "whatsapp", tw.whatsapp_params(phone, "agent please")))[0] == 200
    conv = await conversation_of(gw, "whatsapp", phone)
    async with gw.db.session() as s:
        await s.execute(update(Message).where(Message.conversation_id == conv.id, Message.direction == "in")
                        .values(created_at=utcnow() - timedelta(hours=25)))
    client, _ = await agent_client(gw)
    async with client:
        hid = await handover_of(gw, conv.id)
        assert (await client.post(f"/api/v1/handovers/{hid}/accept")).status == 200
        resp = await client.post(f"/api/v1/handovers/{hid}/messages", json={"text": "Sorry for the wait, here is your answer."})
        assert (await resp.json())["message"]["status"] == "sent"
    sent = await tw.wait_for_message(lambda m: m["To"] == f"whatsapp:{phone}" and "Sorry for the wait" in (m.get("ContentVariables") or ""))
    assert sent["ContentSid"] == "HX" + "0" * 32
    assert "Sorry for the wait" in sent["ContentVariables"]
    assert not sent.get("Body")


async def test_same_phone_on_whatsapp_and_sms_is_one_customer_and_one_conversation(
    live_gateway: LiveGateway, fake_twilio: FakeTwilio
) -> None:
    gw, tw, phone = live_gateway, fake_twilio, new_phone()
    assert (await twilio_post(gw, tw, "whatsapp", tw.whatsapp_params(phone, "Hallo")))[0] == 200
    assert (await twilio_post(gw, tw, "sms", tw.sms_params(phone, "Gibt es eine Störung in 10115?")))[0] == 200
    wa = await conversation_of(gw, "whatsapp", phone)
    sms = await conversation_of(gw, "sms", phone)
    assert wa.id == sms.id and wa.customer_id == sms.customer_id
    assert sms.channel == "sms"  # answers follow the customer to where they wrote last
    assert sent_to(tw, phone), "the SMS answer went to the plain number"


async def test_whatsapp_customer_media_is_fetched_with_the_account_credentials(
    live_gateway: LiveGateway, fake_twilio: FakeTwilio
) -> None:
    gw, tw, phone = live_gateway, fake_twilio, new_phone()
    content = b"\xff\xd8\xff" + secrets.token_bytes(100)
    url = tw.add_media(tw.media_path(), content, "image/jpeg")
    params = tw.whatsapp_params(phone, "", num_media=1, media=[(url, "image/jpeg")])
    assert (await twilio_post(gw, tw, "whatsapp", params))[0] == 200
    conv = await conversation_of(gw, "whatsapp", phone)
    async with gw.db.session() as s:
        msg = await s.scalar(select(Message).where(Message.conversation_id == conv.id, Message.direction == "in"))
    [att] = msg.attachments
    assert att["kind"] == "image" and msg.text == "[photo]"
    stored = gw.settings.var_dir / "media" / att["url"].rsplit("/", 1)[1]
    assert stored.read_bytes() == content
    assert any(status == 200 for path, status in tw.media_requests if path in url)


# --- SMS ---------------------------------------------------------------------------------------


async def test_sms_stop_means_nothing_more_is_sent_until_start(
    live_gateway: LiveGateway, fake_twilio: FakeTwilio
) -> None:
    gw, tw, phone = live_gateway, fake_twilio, new_phone()
    assert (await twilio_post(gw, tw, "sms", tw.sms_params(phone, "Hallo")))[0] == 200
    assert sent_to(tw, phone), "the bot answered by SMS"
    assert (await twilio_post(gw, tw, "sms", tw.sms_params(phone, "STOP")))[0] == 200
    count = len(sent_to(tw, phone))
    async with gw.db.session() as s:
        ident = await s.scalar(select(ChannelIdentity).where(ChannelIdentity.channel == "sms", ChannelIdentity.external_id == phone))
        assert ident.opted_out
    # The customer writes again, and the bot and an agent try to answer: nothing goes out.
    assert (await twilio_post(gw, tw, "sms", tw.sms_params(phone, "Wann kommt meine Rechnung?")))[0] == 200
    conv = await conversation_of(gw, "sms", phone)
    from resonanz.app import DISPATCHER
    from connectors.base import OutboundMessage

    [payload] = await gw.app[DISPATCHER].emit(conv.id, [OutboundMessage(text="Noch eine Frage?", author="agent")])
    assert payload["status"] == "failed" and "opted out" in payload["error"]
    assert len(sent_to(tw, phone)) == count
    async with gw.db.session() as s:
        notes = (await s.scalars(select(Message.text).where(Message.conversation_id == conv.id, Message.direction == "note"))).all()
    assert any("STOP" in n for n in notes), "agents see that the customer opted out"
    # START opts in again, confirmed by one message.
    assert (await twilio_post(gw, tw, "sms", tw.sms_params(phone, "START")))[0] == 200
    assert len(sent_to(tw, phone)) == count + 1


async def test_twilio_signatures_fail_closed_and_duplicates_are_stored_once(
    live_gateway: LiveGateway, fake_twilio: FakeTwilio
) -> None:
    gw, tw, phone = live_gateway, fake_twilio, new_phone()
    url = f"{gw.url}/webhooks/sms/webhook"
    params = tw.sms_params(phone, "Hallo")
    headers, body = tw.signed_webhook(url, params)
    async with aiohttp.ClientSession() as http:
        async def post(h: dict[str, str], b: str) -> int:
            async with http.post(url, data=b, headers=h) as r:
                return r.status

        assert await post({**headers, "X-Twilio-Signature": "Zm9yZ2VkLXNpZ25hdHVyZQ=="}, body) == 403  # forged
        assert await post({k: v for k, v in headers.items() if k != "X-Twilio-Signature"}, body) == 403  # missing
        replay = body.replace("Hallo", "Bitte%20alles%20k%C3%BCndigen")  # a captured signature on other content
        assert await post(headers, replay) == 403
        wa_headers, wa_body = tw.signed_webhook(f"{gw.url}/webhooks/whatsapp/webhook", params)
        assert await post(wa_headers, wa_body) == 403  # signed for another URL
        async with gw.db.session() as s:
            assert await s.scalar(select(func.count()).select_from(ChannelIdentity).where(ChannelIdentity.external_id == phone)) == 0
        assert await post(headers, body) == 200
        assert await post(headers, body) == 200  # Twilio retries a webhook it thinks failed
    conv = await conversation_of(gw, "sms", phone)
    async with gw.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Message).where(
            Message.conversation_id == conv.id, Message.direction == "in")) == 1


async def test_provider_errors_twice_then_accepted_delivers_exactly_once(
    live_gateway: LiveGateway, fake_twilio: FakeTwilio
) -> None:
    gw, tw, phone = live_gateway, fake_twilio, new_phone()
    tw.fail_next(500, times=2, to=phone)  # other conversations' sends may interleave (acknowledged turns)
    attempts_before = len(tw.attempts)
    assert (await twilio_post(gw, tw, "sms", tw.sms_params(phone, "Hallo, gibt es eine Störung in 10115?")))[0] == 200
    first = await tw.wait_for_message(lambda m: m["To"] == phone)
    conv = await conversation_of(gw, "sms", phone)
    async with gw.db.session() as s:
        out = (await s.scalars(select(Message).where(Message.conversation_id == conv.id, Message.direction == "out")
                               .order_by(Message.id))).all()
    # Every reply went out exactly once, in order; the first took three attempts.
    await tw.wait_for_message(lambda m: m["To"] == phone and m["Body"] == out[-1].text.split("\n")[0] or
                              m["To"] == phone and m["Body"].startswith(out[-1].text[:20]))
    await gw.app[DISPATCHER].outbox.tasks.idle()  # the retry's outcomes are recorded
    bodies = [m["Body"] for m in sent_to(tw, phone)]
    assert len(bodies) == len(out)
    assert first["Body"].startswith(out[0].text[:20])
    failed = [a for a in tw.attempts[attempts_before:] if a["http_status"] == 500]
    assert len(failed) == 2 and all(a["To"] == phone for a in failed)
    async with gw.db.session() as s:
        rows = (await s.scalars(select(Message).where(Message.conversation_id == conv.id, Message.direction == "out")
                                .order_by(Message.id))).all()
    assert rows[0].attempts == 3 and all(r.status == "sent" and r.provider_message_id for r in rows), [
        (r.status, r.attempts, r.provider_message_id, r.error) for r in rows]


async def test_telegram_documents_and_locations_reach_the_agent_as_data(
    live_gateway: LiveGateway, fake_telegram: FakeTelegram
) -> None:
    gw, tg, chat = live_gateway, fake_telegram, new_id()
    assert await tg_send(gw, tg, text_update(new_id(), chat, "Ich möchte mit einem Mitarbeiter sprechen")) == 200
    bill = b"%PDF-1.4 " + secrets.token_bytes(200)
    tg.add_file("bill-doc", bill, "documents/rechnung.pdf")
    assert await tg_send(gw, tg, document_update(new_id(), chat, "bill-doc", file_size=len(bill))) == 200
    assert await tg_send(gw, tg, location_update(new_id(), chat, 52.52, 13.405)) == 200
    conv = await conversation_of(gw, "telegram", str(chat))
    async with gw.db.session() as s:
        doc, place = (await s.scalars(select(Message).where(Message.conversation_id == conv.id, Message.direction == "in")
                                      .order_by(Message.id.desc()).limit(2))).all()[::-1]
    [att] = doc.attachments
    assert (att["kind"], att["mime_type"], att["name"]) == ("file", "application/pdf", "rechnung.pdf")
    assert (gw.settings.var_dir / "media" / att["url"].rsplit("/", 1)[1]).read_bytes() == bill
    assert place.metadata_["location"] == {"latitude": 52.52, "longitude": 13.405, "label": None}
    assert place.text == "[location]"  # the place is data, not folded into the text
