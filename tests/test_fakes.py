"""The provider fakes, proven with the real client libraries over real local HTTP.

python-telegram-bot's ``Bot`` and twilio's ``Client`` are pointed at the fakes only through their
URL settings (``base_url``/``base_file_url``; an ``AsyncTwilioHttpClient`` that rewrites the host).
Nothing is patched, so what passes here is what those libraries really send and accept.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from urllib.parse import parse_qsl

import aiohttp
import pytest
import pytest_asyncio
import telegram
from aiohttp import web
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from connectors.fakes import FakeTelegram, FakeTwilio, RedirectingAsyncHttpClient, UploadedFile
from connectors.fakes import telegram as tg_updates

CUSTOMER = 4917612345678
WA_CUSTOMER = "whatsapp:+4917612345678"
WA_BUSINESS = "whatsapp:+4930123456"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class Receiver:
    """A tiny webhook endpoint that keeps what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.received = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((str(request.url), dict(request.headers), await request.read()))
        self.received.set()
        return web.Response(text="ok")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


# --- Telegram ----------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest_asyncio.fixture(loop_scope="session")
async def bot(tg: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url) as b:
        yield b


async def test_bot_initialises_with_get_me(tg: FakeTelegram, bot: telegram.Bot) -> None:
    assert tg.calls[0].method == "getMe"
    assert bot.id == 123456789 and bot.username == "resonanz_test_bot"


async def test_wrong_token_is_rejected_as_invalid_token(tg: FakeTelegram) -> None:
    with pytest.raises(InvalidToken):
        async with telegram.Bot("1:wrong", base_url=tg.base_url, base_file_url=tg.base_file_url):
            pass
    assert tg.calls == [] and tg.unauthorized == [("1:wrong", "getMe")]


async def test_send_message_with_inline_keyboard(tg: FakeTelegram, bot: telegram.Bot) -> None:
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton("Ja", callback_data="yes"), InlineKeyboardButton("Nein", callback_data="no")]]
    )
    first = await bot.send_message(chat_id=CUSTOMER, text="Möchten Sie mit einem Menschen sprechen?", reply_markup=keyboard)
    second = await bot.send_message(chat_id=CUSTOMER, text="Zweite")

    assert second.message_id > first.message_id
    assert first.chat.id == CUSTOMER and first.chat.type == "private"
    assert first.from_user is not None and first.from_user.id == bot.id
    assert isinstance(first.date, datetime)
    assert first.reply_markup == keyboard

    method, params = await tg.wait_for("sendMessage")
    assert method == "sendMessage"
    # ptb sends form fields; the fake decodes the JSON-encoded ones.
    assert params["chat_id"] == CUSTOMER
    assert params["text"] == "Möchten Sie mit einem Menschen sprechen?"
    assert params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Ja", "callback_data": "yes"}, {"text": "Nein", "callback_data": "no"}]]
    }
    assert [c.params["text"] for c in tg.sent] == ["Möchten Sie mit einem Menschen sprechen?", "Zweite"]


async def test_fake_rejects_what_telegram_rejects(tg: FakeTelegram, bot: telegram.Bot) -> None:
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(CUSTOMER, "x", reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("a", callback_data="x" * 65)]]))
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(CUSTOMER, "x" * 4097)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message("@nobody", "x")
    assert tg.sent == []


async def test_wait_for_waits_for_a_later_call(tg: FakeTelegram, bot: telegram.Bot) -> None:
    mark = len(tg.calls)
    waiter = asyncio.create_task(tg.wait_for("sendMessage", lambda p: p["text"] == "später", since=mark))
    await bot.send_message(CUSTOMER, "früher")
    assert not waiter.done()
    await bot.send_message(CUSTOMER, "später")
    call = await waiter
    assert call.params["text"] == "später"

    with pytest.raises(TimeoutError, match="no matching sendPhoto call"):
        await tg.wait_for("sendPhoto", timeout=0.1)


async def test_callback_answer_and_keyboard_removal(tg: FakeTelegram, bot: telegram.Bot) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Ja", callback_data="yes")]])
    sent = await bot.send_message(CUSTOMER, "Frage", reply_markup=keyboard)

    update = Update.de_json(tg_updates.callback_update(7, CUSTOMER, "yes", sent.message_id), bot)
    assert update.callback_query is not None
    assert await update.callback_query.answer() is True
    assert tg.answered_callbacks == [update.callback_query.id]
    _, params = await tg.wait_for("answerCallbackQuery")
    assert params["callback_query_id"] == update.callback_query.id

    edited = await bot.edit_message_reply_markup(chat_id=CUSTOMER, message_id=sent.message_id, reply_markup=None)
    assert isinstance(edited, telegram.Message) and edited.reply_markup is None
    assert "reply_markup" not in tg.messages[(CUSTOMER, sent.message_id)]
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(chat_id=CUSTOMER, message_id=sent.message_id, reply_markup=None)
    with pytest.raises(BadRequest, match="Message to edit not found"):
        await bot.edit_message_reply_markup(chat_id=CUSTOMER, message_id=999999, reply_markup=keyboard)


async def test_send_photo_upload_then_get_file_and_download(tg: FakeTelegram, bot: telegram.Bot) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Mehr", callback_data="more")]])
    message = await bot.send_photo(CUSTOMER, photo=PNG, caption="Ihr Beleg", reply_markup=keyboard)

    assert message.caption == "Ihr Beleg" and message.reply_markup == keyboard
    largest = message.photo[-1]
    _, params = await tg.wait_for("sendPhoto")
    upload = params["photo"]
    assert isinstance(upload, UploadedFile) and upload.content == PNG  # sent as a multipart file part
    assert params["caption"] == "Ihr Beleg" and params["reply_markup"]["inline_keyboard"][0][0]["text"] == "Mehr"

    file = await bot.get_file(largest.file_id)
    assert file.file_path is not None and file.file_path.startswith(tg.base_file_url)
    assert bytes(await file.download_as_bytearray()) == PNG


async def test_send_photo_by_url_and_by_file_id(tg: FakeTelegram, bot: telegram.Bot) -> None:
    by_url = await bot.send_photo(CUSTOMER, photo="https://example.org/karte.png")
    tg.add_file("known-photo", PNG, "photos/file_9.png")
    by_id = await bot.send_photo(CUSTOMER, photo="known-photo")
    assert by_url.photo and by_id.photo[-1].file_id == "known-photo"
    assert [c.params["photo"] for c in tg.sent] == ["https://example.org/karte.png", "known-photo"]
    with pytest.raises(BadRequest, match="Wrong file identifier"):
        await bot.send_photo(CUSTOMER, photo="no-such-file-id")


async def test_send_document_upload(tg: FakeTelegram, bot: telegram.Bot) -> None:
    message = await bot.send_document(CUSTOMER, document=b"%PDF-1.4 ...", filename="rechnung.pdf", caption="Rechnung")
    assert message.document is not None and message.document.file_name == "rechnung.pdf"
    assert message.caption == "Rechnung"
    _, params = await tg.wait_for("sendDocument")
    assert params["document"].filename == "rechnung.pdf" and params["document"].content == b"%PDF-1.4 ..."


async def test_get_file_of_an_inbound_photo(tg: FakeTelegram, bot: telegram.Bot) -> None:
    tg.add_file("AgACAgIAAx0", PNG, "photos/file_1.jpg")
    update = Update.de_json(tg_updates.photo_update(11, CUSTOMER, "AgACAgIAAx0", caption="Schaden"), bot)
    assert update.message is not None
    file = await update.message.photo[-1].get_file()
    assert bytes(await file.download_as_bytearray()) == PNG
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("unknown")


async def test_webhook_set_info_deliver_delete(tg: FakeTelegram, bot: telegram.Bot) -> None:
    async with Receiver() as receiver:
        assert await bot.set_webhook(receiver.url, secret_token="s3cr3t-Token_1", allowed_updates=["message", "callback_query"])
        assert tg.webhook is not None
        assert tg.webhook["url"] == receiver.url
        assert tg.webhook["secret_token"] == "s3cr3t-Token_1"
        assert tg.webhook["allowed_updates"] == ["message", "callback_query"]
        info = await bot.get_webhook_info()
        assert info.url == receiver.url and info.allowed_updates == ("message", "callback_query")

        status, _ = await tg.deliver_update(tg.text_update(1, CUSTOMER, "Hallo"))
        assert status == 200
        url, headers, body = receiver.requests[0]
        assert url == receiver.url and headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cr3t-Token_1"
        assert Update.de_json(json.loads(body), bot).message.text == "Hallo"  # type: ignore[union-attr]

    with pytest.raises(BadRequest, match="Secret token contains unallowed characters"):
        await bot.set_webhook("https://example.org/hook", secret_token="with space")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert tg.webhook is None and (await bot.get_webhook_info()).url == ""


# ptb 22.2+ warns on every RetryAfter (its retry_after becomes a timedelta in v23).
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_failures_surface_as_ptb_exceptions_without_retries(tg: FakeTelegram, bot: telegram.Bot) -> None:
    tg.fail_next("sendMessage", 429, retry_after=3)
    with pytest.raises(RetryAfter) as too_many:
        await bot.send_message(CUSTOMER, "a")
    assert too_many.value.retry_after == 3

    tg.fail_next("sendMessage", 400)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(CUSTOMER, "b")

    tg.fail_next("sendMessage", 403)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(CUSTOMER, "c")

    tg.fail_next("sendMessage", 500, times=2)
    for text in ("d", "e"):
        with pytest.raises(NetworkError, match="Internal Server Error") as server_error:
            await bot.send_message(CUSTOMER, text)
        assert type(server_error.value) is NetworkError  # not BadRequest, not TimedOut

    # ptb never retries on its own: one request per call, and the next call goes through.
    assert [c.params["text"] for c in tg.calls if c.method == "sendMessage"] == ["a", "b", "c", "d", "e"]
    assert tg.sent == []
    assert (await bot.send_message(CUSTOMER, "f")).text == "f"
    assert len(tg.sent) == 1


async def test_json_bodies_any_case_method_names_and_unknown_methods(tg: FakeTelegram, bot: telegram.Bot) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{tg.base_url}{tg.token}/sendmessage"
        payload = {"chat_id": CUSTOMER, "text": "per JSON", "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}}
        async with session.post(url, json=payload) as r:
            answer = await r.json()
    assert answer["ok"] is True and answer["result"]["text"] == "per JSON"
    assert tg.sent[-1] == ("sendMessage", payload)

    with pytest.raises(telegram.error.EndPointNotFound):
        await bot.do_api_request("sendHologram", api_kwargs={"chat_id": CUSTOMER})
    assert tg.calls[-1].method == "sendHologram"


async def test_update_builders_parse_with_ptb(bot: telegram.Bot) -> None:
    text = Update.de_json(tg_updates.text_update(1, CUSTOMER, "Wo ist mein Paket?"), bot)
    assert text.update_id == 1 and text.message is not None
    assert text.message.text == "Wo ist mein Paket?" and text.message.chat.type == "private"
    assert text.effective_user is not None and text.effective_user.first_name == "Erika"
    assert text.effective_user.language_code == "de"

    start = Update.de_json(tg_updates.start_update(2, CUSTOMER, "order-4711"), bot)
    assert start.message is not None and start.message.text == "/start order-4711"
    assert start.message.parse_entities([telegram.MessageEntity.BOT_COMMAND]).popitem()[1] == "/start"

    callback = Update.de_json(tg_updates.callback_update(3, CUSTOMER, "yes", 1001), bot)
    assert callback.callback_query is not None and callback.callback_query.data == "yes"
    assert callback.callback_query.message is not None and callback.callback_query.message.message_id == 1001
    assert callback.effective_chat is not None and callback.effective_chat.id == CUSTOMER

    photo = Update.de_json(tg_updates.photo_update(4, CUSTOMER, "AgACphoto", caption="Kratzer"), bot)
    assert photo.message is not None and photo.message.photo[-1].file_id == "AgACphoto"
    assert photo.message.caption == "Kratzer" and len(photo.message.photo) == 3

    document = Update.de_json(tg_updates.document_update(5, CUSTOMER, "BQACdoc"), bot)
    assert document.message is not None and document.message.document is not None
    assert document.message.document.file_id == "BQACdoc" and document.message.document.mime_type == "application/pdf"

    location = Update.de_json(tg_updates.location_update(6, CUSTOMER, 52.52, 13.405), bot)
    assert location.message is not None and location.message.location is not None
    assert (location.message.location.latitude, location.message.location.longitude) == (52.52, 13.405)


# --- Twilio ------------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def tw() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


@pytest_asyncio.fixture(loop_scope="session")
async def twilio_client(tw: FakeTwilio) -> AsyncIterator[Client]:
    http_client = tw.http_client()
    yield Client(tw.account_sid, tw.auth_token, http_client=http_client)
    await http_client.close()  # the twilio Client never closes its http client


async def test_redirecting_client_rewrites_only_twilio_urls() -> None:
    client = RedirectingAsyncHttpClient("http://127.0.0.1:8080/twilio/")
    try:
        assert client.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?PageSize=5") == (
            "http://127.0.0.1:8080/twilio/2010-04-01/Accounts/AC1/Messages.json?PageSize=5"
        )
        assert client.rewrite("https://messaging.dublin.ie1.twilio.com/v1/Services") == (
            "http://127.0.0.1:8080/twilio/v1/Services"
        )
        assert client.rewrite("https://example.org/media.png") == "https://example.org/media.png"
        assert client.rewrite("https://twilio.com.evil.example/x") == "https://twilio.com.evil.example/x"
    finally:
        await client.close()
    # Like AsyncTwilioHttpClient it opens an aiohttp session at once: it needs a running loop.
    with pytest.raises(RuntimeError, match="no running event loop"):
        await asyncio.to_thread(RedirectingAsyncHttpClient, "http://127.0.0.1:8080")


async def test_create_whatsapp_message(tw: FakeTwilio, twilio_client: Client) -> None:
    message = await twilio_client.messages.create_async(to=WA_CUSTOMER, from_=WA_BUSINESS, body="Hallo Erika")

    assert message.sid is not None and message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued" and message.to == WA_CUSTOMER and message.from_ == WA_BUSINESS
    assert message.body == "Hallo Erika" and message.num_media == "0"
    assert isinstance(message.date_created, datetime) and message.account_sid == tw.account_sid

    record = await tw.wait_for_message(lambda m: m["To"] == WA_CUSTOMER)
    assert record == {
        "To": WA_CUSTOMER,
        "From": WA_BUSINESS,
        "Body": "Hallo Erika",
        "MediaUrl": [],
        "sid": message.sid,
        "http_status": 201,
    }


async def test_create_with_media_status_callback_and_template(tw: FakeTwilio, twilio_client: Client) -> None:
    message = await twilio_client.messages.create_async(
        to=WA_CUSTOMER,
        from_=WA_BUSINESS,
        media_url=["https://example.org/a.png", "https://example.org/b.pdf"],
        status_callback="https://gateway.example/webhooks/twilio/status",
        content_sid="HX" + "0" * 32,
        content_variables='{"1": "Erika"}',
    )
    assert message.sid is not None and message.sid.startswith("MM") and message.num_media == "2"
    record = tw.messages[-1]
    assert record["MediaUrl"] == ["https://example.org/a.png", "https://example.org/b.pdf"]
    assert record["StatusCallback"] == "https://gateway.example/webhooks/twilio/status"
    assert record["ContentSid"] == "HX" + "0" * 32 and record["ContentVariables"] == '{"1": "Erika"}'


async def test_wrong_credentials_raise_20003(tw: FakeTwilio) -> None:
    http_client = tw.http_client()
    try:
        client = Client(tw.account_sid, "wrong-token", http_client=http_client)
        with pytest.raises(TwilioRestException) as exc:
            await client.messages.create_async(to="+4917612345678", from_="+4930123456", body="x")
    finally:
        await http_client.close()
    assert exc.value.status == 401 and exc.value.code == 20003
    assert tw.attempts == []  # rejected before the message was looked at


async def test_failures_raise_twilio_rest_exception(tw: FakeTwilio, twilio_client: Client) -> None:
    send = twilio_client.messages.create_async

    tw.fail_next(500)
    with pytest.raises(TwilioRestException) as server_error:
        await send(to=WA_CUSTOMER, from_=WA_BUSINESS, body="1")
    assert (server_error.value.status, server_error.value.code) == (500, 20500)

    tw.fail_next(400)
    with pytest.raises(TwilioRestException) as invalid_to:
        await send(to=WA_CUSTOMER, from_=WA_BUSINESS, body="2")
    assert (invalid_to.value.status, invalid_to.value.code) == (400, 21211)
    assert "Invalid 'To' Phone Number" in invalid_to.value.msg

    tw.fail_next(400, code=63016)
    with pytest.raises(TwilioRestException) as outside_window:
        await send(to=WA_CUSTOMER, from_=WA_BUSINESS, body="3")
    assert (outside_window.value.status, outside_window.value.code) == (400, 63016)

    tw.fail_next(429, retry_after=7)
    with pytest.raises(TwilioRestException) as too_many:
        await send(to=WA_CUSTOMER, from_=WA_BUSINESS, body="4")
    assert (too_many.value.status, too_many.value.code) == (429, 20429)

    with pytest.raises(TwilioRestException) as channel_mismatch:  # the fake's own check, as Twilio's
        await send(to=WA_CUSTOMER, from_="+4930123456", body="5")
    assert channel_mismatch.value.code == 21910

    # The client does not retry by default: one attempt per call, none accepted.
    assert [(a["Body"], a["http_status"], a["sid"]) for a in tw.attempts] == [
        ("1", 500, None), ("2", 400, None), ("3", 400, None), ("4", 429, None), ("5", 400, None)
    ]  # fmt: skip
    assert tw.messages == []
    assert (await send(to=WA_CUSTOMER, from_=WA_BUSINESS, body="6")).status == "queued"
    assert len(tw.messages) == 1


async def test_retry_after_header_on_429(tw: FakeTwilio) -> None:
    tw.fail_next(429, retry_after=7)
    url = f"{tw.base_url}/2010-04-01/Accounts/{tw.account_sid}/Messages.json"
    auth = {"Authorization": aiohttp.encode_basic_auth(tw.account_sid, tw.auth_token)}
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.post(url, data={"To": "+4917612345678", "From": "+4930123456", "Body": "x"}) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "7"
            assert (await r.json())["code"] == 20429


async def test_client_with_max_retries_retries_5xx(tw: FakeTwilio) -> None:
    http_client = tw.http_client(max_retries=3)
    try:
        client = Client(tw.account_sid, tw.auth_token, http_client=http_client)
        tw.fail_next(500)
        message = await client.messages.create_async(to=WA_CUSTOMER, from_=WA_BUSINESS, body="again")
    finally:
        await http_client.close()
    assert [a["http_status"] for a in tw.attempts] == [500, 201]
    assert tw.messages[0]["sid"] == message.sid


async def test_media_needs_account_basic_auth(tw: FakeTwilio) -> None:
    url = tw.add_media(tw.media_path(), PNG, "image/png")
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Authorization": aiohttp.encode_basic_auth(tw.account_sid, tw.auth_token)}) as r:
            assert r.status == 200 and r.content_type == "image/png" and await r.read() == PNG
        async with session.get(url) as r:
            assert r.status == 401 and (await r.json())["code"] == 20003
        async with session.get(url, headers={"Authorization": aiohttp.encode_basic_auth(tw.account_sid, "wrong")}) as r:
            assert r.status == 401
        async with session.get(f"{tw.base_url}/nothing-here") as r:
            assert r.status == 404


async def test_signed_inbound_whatsapp_webhook_validates(tw: FakeTwilio) -> None:
    media_url = tw.add_media(tw.media_path(), PNG, "image/png")
    params = tw.whatsapp_params("+4917612345678", "Hier das Foto", media=[(media_url, "image/png")], profile_name="Erika")
    assert params["From"] == WA_CUSTOMER and params["To"] == WA_BUSINESS and params["WaId"] == "4917612345678"
    assert params["NumMedia"] == "1" and params["MediaUrl0"] == media_url and params["MediaContentType0"] == "image/png"
    assert params["MessageSid"] == params["SmsSid"] and params["MessageSid"].startswith("MM")
    assert params["AccountSid"] == tw.account_sid and params["ProfileName"] == "Erika"

    async with Receiver() as receiver:
        url = receiver.url + "?channel=whatsapp"
        status, _ = await tw.post_webhook(url, params)
        assert status == 200
        seen_url, headers, body = receiver.requests[0]

    form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    validator = RequestValidator(tw.auth_token)
    assert form == params and seen_url == url
    assert validator.validate(seen_url, form, headers["X-Twilio-Signature"])
    assert not validator.validate(seen_url, {**form, "Body": "manipuliert"}, headers["X-Twilio-Signature"])
    assert not RequestValidator("other-token").validate(seen_url, form, headers["X-Twilio-Signature"])


async def test_sms_and_status_params(tw: FakeTwilio, twilio_client: Client) -> None:
    sms = tw.sms_params("+4917612345678", "STOP")
    assert sms["From"] == "+4917612345678" and sms["To"] == "+4930123456" and sms["NumMedia"] == "0"
    headers, body = tw.signed_webhook("https://gateway.example/webhooks/twilio", sms)
    assert RequestValidator(tw.auth_token).validate("https://gateway.example/webhooks/twilio", sms, headers["X-Twilio-Signature"])
    assert body.startswith("AccountSid=")

    sent = await twilio_client.messages.create_async(to=WA_CUSTOMER, from_=WA_BUSINESS, body="Hallo")
    assert sent.sid is not None
    failed = tw.status_params(sent.sid, "undelivered", error_code=63016)
    assert failed["MessageSid"] == sent.sid and failed["MessageStatus"] == "undelivered"
    assert failed["ErrorCode"] == "63016" and failed["To"] == WA_CUSTOMER and failed["From"] == WA_BUSINESS
    assert failed["ChannelPrefix"] == "whatsapp" and failed["AccountSid"] == tw.account_sid
    delivered = tw.status_params("SM" + "1" * 32, "delivered", channel="sms")
    assert "ErrorCode" not in delivered and delivered["To"] == "+4917612345678"
