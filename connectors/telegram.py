"""Telegram, through python-telegram-bot's `Bot` (webhook mode on the gateway's own server).

    POST /webhooks/telegram/webhook   an Update, with header X-Telegram-Bot-Api-Secret-Token

Options (resonanz.yml, `connectors.telegram`):
    token_env / token      the bot token from @BotFather (required)
    secret_env / secret    the webhook secret (required; 1-256 of A-Z a-z 0-9 _ -)
    api_base_url           Bot API base, default https://api.telegram.org/bot (tests: a fake)
    file_base_url          file download base, default https://api.telegram.org/file/bot

The secret header is compared in constant time; missing or wrong -> 403. `update_id` is the
message's provider id, so a re-delivered update is stored once. A private chat's user name (if
the customer has one) is kept in the address's extra as `username`, so agents see "@name"; the
chat id stays the address replies go to. Inline-keyboard presses are
answered at once (the button stops spinning) and reach the bot as the button's payload.
"""

from __future__ import annotations

import hmac
import re
import warnings
from dataclasses import replace
from datetime import timedelta
from typing import Annotated, Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram import Message as TgMessage
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from connectors.base import (
    Attachment,
    ChannelAddress,
    Connector,
    ConnectorContext,
    DeliveryError,
    InboundMessage,
    Location,
    OutboundMessage,
)
from connectors.webhook import RequestRejected, json_error, parse_json, read_body
from resonanz.config import ConfigError
from resonanz.media import MAX_MEDIA_BYTES

log = structlog.get_logger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
MAX_UPDATE_BYTES = 256 * 1024
# Telegram's limit on callback_data; longer payloads are sent as the option's number.
MAX_CALLBACK_BYTES = 64
MAX_CAPTION = 1024
ALLOWED_UPDATES = ("message", "callback_query")


# --- the part of an Update this connector reads, checked before python-telegram-bot sees it ------
# Update.de_json trusts its input's types ("message": "x" crashes it; a text that is a number
# passes through and crashes later), so the fields we use are validated strictly first.

Int64 = Annotated[int, Field(ge=-(2**63), lt=2**63)]
Name = Annotated[str, Field(max_length=200)]
FileId = Annotated[str, Field(min_length=1, max_length=512)]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class _User(_Model):
    id: Int64
    first_name: Name = ""
    username: Name | None = None
    language_code: Annotated[str, Field(max_length=35)] | None = None


class _Chat(_Model):
    id: Int64
    type: str
    username: Name | None = None


# Telegram's user names: 5-32 of A-Z a-z 0-9 _ (a little wider here; anything else is ignored).
USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


class _Photo(_Model):
    file_id: FileId
    file_unique_id: str
    width: Int64
    height: Int64
    file_size: Int64 | None = None


class _Document(_Model):
    file_id: FileId
    file_unique_id: str
    mime_type: Annotated[str, Field(max_length=255)] | None = None
    file_name: Annotated[str, Field(max_length=255)] | None = None
    file_size: Int64 | None = None


class _Location(_Model):
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]


class _Message(_Model):
    message_id: Int64
    date: Annotated[int, Field(ge=0, lt=2**37)]
    chat: _Chat
    from_: _User | None = Field(default=None, alias="from")
    text: str | None = None
    caption: str | None = None
    photo: list[_Photo] | None = None
    document: _Document | None = None
    location: _Location | None = None


class _CallbackQuery(_Model):
    id: str
    from_: _User = Field(alias="from")
    data: str | None = None
    message: _Message | None = None


class _Update(_Model):
    update_id: Annotated[int, Field(ge=0, lt=2**63)]
    message: _Message | None = None
    callback_query: _CallbackQuery | None = None


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]).replace("from_", "from")
    message = re.sub(r" or instance of \w+", "", first["msg"])  # our class names mean nothing to a caller
    return f"body is not a Telegram update: {where}: {message}"


def _retry_seconds(exc: RetryAfter) -> float:
    # ptb 22 returns an int (deprecated) or a timedelta (PTB_TIMEDELTA=1); accept both quietly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: int | timedelta = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _language(code: str | None) -> str | None:
    if not code:
        return None
    primary = code.split("-")[0].lower()
    return primary if primary in ("de", "en") else None


class TelegramConnector(Connector):
    name = "telegram"

    def __init__(self, ctx: ConnectorContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config
        token, secret = cfg.get("token"), cfg.get("secret")
        if not token:
            raise ConfigError("connector 'telegram': option token (token_env) is required")
        if not secret or not SECRET_RE.match(str(secret)):
            raise ConfigError(
                "connector 'telegram': option secret (secret_env) is required: 1-256 characters of A-Z a-z 0-9 _ -"
            )
        self.secret = str(secret).encode()
        self.bot = Bot(
            str(token),
            base_url=cfg.get("api_base_url", "https://api.telegram.org/bot"),
            base_file_url=cfg.get("file_base_url", "https://api.telegram.org/file/bot"),
        )

    def routes(self) -> list[web.AbstractRouteDef]:
        return [web.post("/webhooks/telegram/webhook", self.webhook)]

    @property
    def webhook_path(self) -> str:
        return "/webhooks/telegram/webhook"

    async def startup(self) -> None:
        try:
            await self.bot.initialize()
        except InvalidToken as exc:
            raise ConfigError("connector 'telegram': the Bot API rejected the token") from exc
        except TelegramError as exc:
            # Telegram unreachable at start: sends are retried by the outbox; nothing to stop for.
            log.warning("telegram.unreachable_at_start", error=type(exc).__name__)

    async def shutdown(self) -> None:
        try:
            await self.bot.shutdown()
        except TelegramError:
            log.warning("telegram.shutdown_failed")

    async def register_webhook(self, public_url: str) -> str:
        """setWebhook with our secret and the update types we handle. Returns the URL."""
        url = public_url.rstrip("/") + self.webhook_path
        await self.bot.set_webhook(
            url=url, secret_token=self.secret.decode(), allowed_updates=list(ALLOWED_UPDATES),
            drop_pending_updates=False,
        )
        return url

    # --- inbound -------------------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not given or not hmac.compare_digest(given, self.secret):
            log.warning("telegram.bad_secret", present=bool(given))
            return web.json_response({"error": "missing or wrong secret token"}, status=403)
        try:
            data = parse_json(await read_body(request, MAX_UPDATE_BYTES))
        except RequestRejected as exc:
            return exc.response()
        if not isinstance(data, dict):
            return json_error(400, "body is not a Telegram update: not a JSON object")
        try:
            _Update.model_validate(data)
        except ValidationError as exc:
            return json_error(400, _validation_message(exc))
        try:
            update = Update.de_json(data, self.bot)
        except Exception:  # noqa: BLE001 - de_json is no validator: any field it does not expect
            # in the shape it expects (we checked only those we read) raises something else.
            log.warning("telegram.unparsable_update")
            return json_error(400, "body is not a Telegram update: python-telegram-bot cannot parse it")
        inbound = await self._normalise(update)
        if inbound is None:
            return web.json_response({"ok": True, "ignored": True})
        if len(inbound.text) > self.ctx.settings.max_message_chars:
            return web.json_response({"error": "message is too long"}, status=413)
        # Acknowledged once stored: the turn runs afterwards (Telegram resends on a slow answer).
        result = await (self.ctx.accept or self.ctx.on_message)(inbound)
        return web.json_response({"ok": True, "duplicate": result.duplicate})

    async def _normalise(self, update: Update) -> InboundMessage | None:
        provider_id = f"update:{update.update_id}"
        if update.callback_query is not None:
            query = update.callback_query
            try:
                await query.answer()  # stop the spinner first; the answer may take a moment
            except TelegramError:
                log.warning("telegram.callback_answer_failed")
            message = query.message
            if message is None or query.data is None:
                return None
            user = query.from_user
            return InboundMessage(
                channel=self.name,
                sender_id=str(message.chat.id),
                text=query.data,
                address=self._address(message.chat, user),
                provider_message_id=provider_id,
                metadata={"telegram": {"callback": True}},
                language_hint=_language(user.language_code),
                display_name=user.first_name,
            )
        message = update.message
        if message is None:
            return None  # edited messages, channel posts, ...: not part of a conversation
        user = message.from_user
        text = message.text or message.caption or ""
        metadata: dict[str, Any] = {}
        attachments: list[Attachment] = []
        location = None
        if text.startswith("/start"):
            payload = text[len("/start"):].strip()
            metadata["start_payload"] = payload or None
            text = self.ctx.settings.start_text or "/start"
        if message.photo:
            attachments.append(await self._download(message.photo[-1].file_id, "image/jpeg", None, message.photo[-1].file_size))
        if message.document is not None:
            doc = message.document
            attachments.append(await self._download(doc.file_id, doc.mime_type, doc.file_name, doc.file_size))
        if message.location is not None:
            location = Location(message.location.latitude, message.location.longitude)
        if not text:
            text = "[location]" if location else "[photo]" if message.photo else "[file]" if attachments else ""
        if not text:
            return None  # stickers, voice, ...: nothing we can pass on yet
        return InboundMessage(
            channel=self.name,
            sender_id=str(message.chat.id),
            text=text,
            address=self._address(message.chat, user),
            provider_message_id=provider_id,
            attachments=tuple(attachments),
            location=location,
            metadata=metadata,
            language_hint=_language(user.language_code if user else None),
            display_name=user.first_name if user else None,
        )

    async def _download(self, file_id: str, mime: str | None, name: str | None, size: int | None) -> Attachment:
        """Fetch a customer's file through the Bot API and store it with the message."""
        kind = "image" if (mime or "").startswith("image/") else "file"
        if size is not None and size > MAX_MEDIA_BYTES:
            return Attachment(kind=kind, url="", mime_type=mime, name=f"{name or 'file'} (too large, not stored)")
        try:
            tg_file = await self.bot.get_file(file_id)
            content = bytes(await tg_file.download_as_bytearray())
        except TelegramError as exc:
            log.warning("telegram.download_failed", error=type(exc).__name__)
            return Attachment(kind=kind, url="", mime_type=mime, name=f"{name or 'file'} (download failed)")
        assert self.ctx.media is not None
        return self.ctx.media.save(content, mime, name)

    def _address(self, chat: Any, user: Any) -> ChannelAddress:
        """The chat id to reply to, and the user name agents may read ("@name"): a private chat's
        (its user's), a public group's own; none when there is none."""
        username = chat.username or (user.username if user is not None and chat.type == "private" else None)
        extra = {"username": username} if username and USERNAME_RE.match(username) else {}
        return ChannelAddress(channel=self.name, recipient=str(chat.id), extra=extra)

    # --- outbound ------------------------------------------------------------------------------

    @staticmethod
    def _keyboard(message: OutboundMessage) -> InlineKeyboardMarkup | None:
        if not message.buttons:
            return None
        rows = []
        for i, b in enumerate(message.buttons, start=1):
            data = b.payload if len(b.payload.encode()) <= MAX_CALLBACK_BYTES else str(i)
            rows.append([InlineKeyboardButton(b.title[:64], callback_data=data)])
        return InlineKeyboardMarkup(rows)

    def _upload(self, attachment: Attachment) -> bytes | str:
        """Our own stored file as bytes (uploaded), anything else by URL (Telegram fetches it)."""
        media = self.ctx.media
        path = media.local_path(attachment.url) if media is not None else None
        return path.read_bytes() if path is not None else attachment.url

    def split(self, message: OutboundMessage) -> list[OutboundMessage]:
        """One Bot API call per stored message: the text alone (with the buttons) when it is too
        long for a caption or several files follow, then each file on its own."""
        files = [a for a in message.attachments if a.url]
        if not files or (len(files) == 1 and len(message.text) <= MAX_CAPTION):
            return [message]
        parts = [replace(message, attachments=())] if message.text.strip() or message.buttons else []
        parts += [replace(message, text="", buttons=(), attachments=(a,)) for a in files]
        return parts

    async def send(self, address: ChannelAddress, message: OutboundMessage) -> str | None:
        chat_id = int(address.recipient)
        markup = self._keyboard(message)
        files = [a for a in message.attachments if a.url]
        if len(files) > 1 or (files and len(message.text) > MAX_CAPTION):
            # split() makes these several messages; sending only a part would lose the rest.
            raise DeliveryError("Telegram: one message carries at most one file with a short caption", permanent=True)
        try:
            sent: TgMessage
            if files and files[0].kind == "image":
                sent = await self.bot.send_photo(chat_id, self._upload(files[0]), caption=message.text or None,
                                                 reply_markup=markup)
            elif files:
                sent = await self.bot.send_document(chat_id, self._upload(files[0]), caption=message.text or None,
                                                    filename=files[0].name, reply_markup=markup)
            else:
                sent = await self.bot.send_message(chat_id, message.text, reply_markup=markup)
        except RetryAfter as exc:
            raise DeliveryError("Telegram: too many requests", retry_after=_retry_seconds(exc)) from exc
        except (BadRequest, Forbidden, InvalidToken) as exc:
            # "chat not found", "bot was blocked by the user", a bad token: retrying cannot help.
            raise DeliveryError(f"Telegram refused the message: {exc.message}", permanent=True) from exc
        except NetworkError as exc:  # timeouts, connection errors and 5xx
            raise DeliveryError(f"Telegram unreachable: {exc.message}") from exc
        except TelegramError as exc:
            raise DeliveryError(f"Telegram error: {exc.message}", permanent=True) from exc
        return f"{chat_id}:{sent.message_id}"
