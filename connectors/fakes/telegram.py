"""A fake Telegram Bot API: a real aiohttp server on 127.0.0.1:0 for the real python-telegram-bot.

Point the client at it with
``telegram.Bot(tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url)``.

python-telegram-bot posts form data (multipart when a file is uploaded) in which every value that
is not a string is JSON-encoded (``chat_id=42``, ``reply_markup={"inline_keyboard": ...}``). The
fake decodes the fields it knows to be non-strings, so ``params["chat_id"]`` is an ``int`` and
``params["reply_markup"]`` a ``dict``; everything else stays the string that was sent. JSON bodies
are accepted too, as by the real Bot API.

The module also builds webhook updates as Telegram sends them (``text_update`` and friends).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from connectors.fakes.server import LocalServer

DEFAULT_TOKEN = "123456789:AAFakeTokenForTheLocalBotApi_0123456789"
DEFAULT_BOT_USER: dict[str, Any] = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "Resonanz Test",
    "username": "resonanz_test_bot",
}

_ERROR_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

# Fields the Bot API documents as numbers, booleans, arrays or objects. In form data they arrive
# JSON-encoded; all other fields are strings and are kept exactly as sent.
_JSON_FIELDS = frozenset(
    {
        "chat_id", "message_id", "from_chat_id", "message_thread_id", "reply_to_message_id",
        "reply_markup", "allowed_updates", "entities", "caption_entities", "link_preview_options",
        "reply_parameters", "max_connections", "cache_time", "drop_pending_updates", "show_alert",
        "disable_notification", "protect_content", "allow_sending_without_reply",
        "disable_web_page_preview", "has_spoiler", "show_caption_above_media",
        "disable_content_type_detection", "latitude", "longitude", "media",
    }
)  # fmt: skip

_SENDING_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class Call(NamedTuple):
    """One Bot API request as the fake received it (unpacks as ``method, params``)."""

    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request (``params["photo"]`` after ``send_photo(bytes)``)."""

    filename: str | None
    content_type: str | None
    content: bytes


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _error_response(status: int, description: str, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return web.json_response(body, status=status)


# --- webhook update builders (plain dicts, as Telegram POSTs them) ---------------------------------


def _user(chat_id: int, first_name: str, language_code: str | None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": first_name}
    if language_code:
        user["language_code"] = language_code
    return user


def _message_update(
    update_id: int,
    chat_id: int,
    first_name: str,
    language_code: str | None,
    message_id: int | None,
    **content: Any,
) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": message_id if message_id is not None else update_id,
            "from": _user(chat_id, first_name, language_code),
            "chat": {"id": chat_id, "first_name": first_name, "type": "private"},
            "date": int(time.time()),
            **content,
        },
    }


def text_update(
    update_id: int,
    chat_id: int,
    text: str,
    first_name: str = "Erika",
    language_code: str | None = "de",
    *,
    message_id: int | None = None,
) -> dict[str, Any]:
    """A private text message. A text starting with ``/`` gets its bot_command entity."""
    content: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        content["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
    return _message_update(update_id, chat_id, first_name, language_code, message_id, **content)


def start_update(
    update_id: int,
    chat_id: int,
    payload: str | None = None,
    first_name: str = "Erika",
    language_code: str | None = "de",
    *,
    message_id: int | None = None,
) -> dict[str, Any]:
    """``/start PAYLOAD`` as sent when a user opens a t.me/bot?start=PAYLOAD deep link."""
    text = f"/start {payload}" if payload else "/start"
    return text_update(update_id, chat_id, text, first_name, language_code, message_id=message_id)


def callback_update(
    update_id: int,
    chat_id: int,
    data: str,
    message_id: int,
    first_name: str = "Erika",
    language_code: str | None = "de",
    *,
    callback_query_id: str | None = None,
    message_text: str = "…",
    bot_user: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A press on an inline button with ``callback_data=data`` under the bot's message ``message_id``."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": callback_query_id or f"{chat_id}{update_id:08d}",
            "from": _user(chat_id, first_name, language_code),
            "message": {
                "message_id": message_id,
                "from": dict(bot_user or DEFAULT_BOT_USER),
                "chat": {"id": chat_id, "first_name": first_name, "type": "private"},
                "date": int(time.time()),
                "text": message_text,
            },
            "chat_instance": f"-{abs(chat_id) * 7919}",
            "data": data,
        },
    }


def photo_update(
    update_id: int,
    chat_id: int,
    file_id: str,
    caption: str | None = None,
    first_name: str = "Erika",
    language_code: str | None = "de",
    *,
    message_id: int | None = None,
) -> dict[str, Any]:
    """A photo: three sizes, smallest first; the largest (last) has ``file_id``."""
    sizes = [
        {"file_id": f"{file_id}-90", "file_unique_id": "AQADs90", "file_size": 1200, "width": 90, "height": 68},
        {"file_id": f"{file_id}-320", "file_unique_id": "AQADm320", "file_size": 15000, "width": 320, "height": 240},
        {"file_id": file_id, "file_unique_id": "AQADx1280", "file_size": 120000, "width": 1280, "height": 960},
    ]
    content: dict[str, Any] = {"photo": sizes}
    if caption is not None:
        content["caption"] = caption
    return _message_update(update_id, chat_id, first_name, language_code, message_id, **content)


def document_update(
    update_id: int,
    chat_id: int,
    file_id: str,
    file_name: str = "rechnung.pdf",
    mime_type: str = "application/pdf",
    caption: str | None = None,
    first_name: str = "Erika",
    language_code: str | None = "de",
    *,
    file_size: int = 34567,
    message_id: int | None = None,
) -> dict[str, Any]:
    content: dict[str, Any] = {
        "document": {
            "file_id": file_id,
            "file_unique_id": "AgADdoc",
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": file_size,
        }
    }
    if caption is not None:
        content["caption"] = caption
    return _message_update(update_id, chat_id, first_name, language_code, message_id, **content)


def location_update(
    update_id: int,
    chat_id: int,
    lat: float,
    lon: float,
    first_name: str = "Erika",
    language_code: str | None = "de",
    *,
    message_id: int | None = None,
) -> dict[str, Any]:
    return _message_update(
        update_id, chat_id, first_name, language_code, message_id, location={"latitude": lat, "longitude": lon}
    )


class FakeTelegram(LocalServer):
    """A local Telegram Bot API that records every call and can be told to fail.

    ``calls`` holds every authorised request in order (failed ones included); ``sent`` only the
    messages the fake accepted (sendMessage, sendPhoto, sendDocument); ``webhook`` the last
    setWebhook parameters (``None`` after deleteWebhook); ``messages`` the messages the bot sent,
    by ``(chat_id, message_id)``, as they are now (edits applied).
    """

    def __init__(self, token: str = DEFAULT_TOKEN, *, bot_user: Mapping[str, Any] | None = None) -> None:
        self.token = token
        bot_id = token.split(":", 1)[0]
        self.bot_user: dict[str, Any] = dict(bot_user or DEFAULT_BOT_USER)
        if bot_user is None and bot_id.isdigit():
            self.bot_user["id"] = int(bot_id)
        self.calls: list[Call] = []
        self.sent: list[Call] = []
        self.unauthorized: list[tuple[str, str]] = []  # (token, method) of rejected requests
        self.webhook: dict[str, Any] | None = None
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.answered_callbacks: list[str] = []
        self._files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)
        self._failures: dict[str, list[_Failure]] = {}
        self._changed = asyncio.Condition()
        self._message_ids = itertools.count(1001)
        self._file_ids = itertools.count(1)
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": self._get_me,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "sendChatAction": self._send_chat_action,
            "answerCallbackQuery": self._answer_callback_query,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "editMessageText": self._edit_message_text,
            "getFile": self._get_file,
        }
        # The Bot API treats method names case-insensitively.
        self._by_lower_name = {name.lower(): name for name in self._handlers}

    # --- lifecycle -------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=60 * 1024 * 1024)  # the Bot API takes 50 MB uploads
        app.add_routes(
            [
                web.route("*", "/bot{token}/{method}", self._handle_api),
                web.get("/file/bot{token}/{file_path:.+}", self._handle_download),
            ]
        )
        return app

    @property
    def base_url(self) -> str:
        """For ``Bot(base_url=...)``; the client appends the token."""
        return f"{self.origin}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``Bot(base_file_url=...)``; the client appends the token."""
        return f"{self.origin}/file/bot"

    # --- test controls ---------------------------------------------------------------------------

    def add_file(self, file_id: str, content: bytes, file_path: str | None = None) -> str:
        """Make ``file_id`` known to getFile and downloadable; returns its file_path."""
        path = file_path or f"documents/{file_id}"
        self._files[file_id] = (path, content)
        return path

    def fail_next(
        self,
        method: str,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        description: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with a Bot API error of HTTP ``status``.

        A 429 always carries ``parameters.retry_after`` (default 1 s), as Telegram's do.
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        text = description or _ERROR_DESCRIPTIONS.get(status, f"Error {status}")
        failure = _Failure(status, text.format(retry_after=retry_after), retry_after)
        name = self._by_lower_name.get(method.lower(), method)
        self._failures.setdefault(name, []).extend(failure for _ in range(times))

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5,
        *,
        since: int = 0,
    ) -> Call:
        """The first call of ``method`` (from ``calls[since:]``) whose params satisfy ``predicate``.

        Returns at once if such a call was already recorded; otherwise waits for it.
        """
        name = self._by_lower_name.get(method.lower(), method)

        def match() -> Call | None:
            for call in self.calls[since:]:
                if call.method == name and (predicate is None or predicate(call.params)):
                    return call
            return None

        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    return await self._changed.wait_for(match)
        except TimeoutError:
            seen = [c.method for c in self.calls[since:]]
            raise TimeoutError(
                f"no matching {name} call within {timeout}s; calls since #{since}: {seen}"
                + (f"; rejected (wrong token): {self.unauthorized}" if self.unauthorized else "")
            ) from None

    async def deliver_update(
        self, update: Mapping[str, Any], *, url: str | None = None, secret_token: str | None = None
    ) -> tuple[int, str]:
        """POST an update to the webhook, as Telegram does; returns (HTTP status, body).

        Defaults to the URL and secret token of the last setWebhook.
        """
        hook = self.webhook or {}
        target = url or hook.get("url")
        if not target:
            raise RuntimeError("no webhook set and no url given")
        secret = secret_token if secret_token is not None else hook.get("secret_token")
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
        async with aiohttp.ClientSession() as session, session.post(target, json=update, headers=headers) as r:
            return r.status, await r.text()

    # --- HTTP ------------------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        requested = request.match_info["method"]
        if request.match_info["token"] != self.token:
            self.unauthorized.append((request.match_info["token"], requested))
            return _error_response(401, "Unauthorized")
        method = self._by_lower_name.get(requested.lower(), requested)
        try:
            params = await self._read_params(request)
        except _ApiError as exc:
            params, response = {}, _error_response(exc.status, exc.description)
        else:
            response = self._answer(method, params)
        # Recorded once the answer is decided, so waiters see `sent` and `messages` up to date.
        async with self._changed:
            self.calls.append(Call(method, params))
            if response.status == 200 and method in _SENDING_METHODS:
                self.sent.append(Call(method, params))
            self._changed.notify_all()
        return response

    def _answer(self, method: str, params: dict[str, Any]) -> web.Response:
        queued = self._failures.get(method)
        if queued:
            failure = queued.pop(0)
            return _error_response(failure.status, failure.description, failure.retry_after)
        handler = self._handlers.get(method)
        if handler is None:
            return _error_response(404, "Not Found")
        try:
            result = handler(params)
        except _ApiError as exc:
            return _error_response(exc.status, exc.description)
        return web.json_response({"ok": True, "result": result})

    async def _handle_download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error_response(401, "Unauthorized")
        wanted = request.match_info["file_path"]
        for path, content in self._files.values():
            if path == wanted:
                return web.Response(body=content, content_type="application/octet-stream")
        return _error_response(404, "Not Found")

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _ApiError(400, "Bad Request: can't parse JSON object") from None
            params.update(body if isinstance(body, dict) else {})
        elif request.can_read_body:
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    params[key] = UploadedFile(value.filename, value.content_type, value.file.read())
                else:
                    params[key] = value
        for key in _JSON_FIELDS & params.keys():
            value = params[key]
            if isinstance(value, str):
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    if key == "reply_markup":
                        raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object") from None
                    # e.g. chat_id="@channelname" stays a string
        return params

    # --- Bot API methods -------------------------------------------------------------------------

    def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _set_webhook(self, params: dict[str, Any]) -> bool:
        url = params.get("url", "")
        if not url:
            self.webhook = None
            return True
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
            raise _ApiError(400, "Bad Request: secret token contains unallowed characters")
        self.webhook = {
            "url": url,
            "secret_token": secret,
            "allowed_updates": params.get("allowed_updates"),
            "max_connections": params.get("max_connections", 40),
            "drop_pending_updates": params.get("drop_pending_updates", False),
            "ip_address": params.get("ip_address"),
            "has_custom_certificate": "certificate" in params,
        }
        return True

    def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook = None
        return True

    def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        hook = self.webhook
        if hook is None:
            return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        info: dict[str, Any] = {
            "url": hook["url"],
            "has_custom_certificate": hook["has_custom_certificate"],
            "pending_update_count": 0,
            "max_connections": hook["max_connections"],
        }
        if hook["allowed_updates"] is not None:
            info["allowed_updates"] = hook["allowed_updates"]
        if hook["ip_address"]:
            info["ip_address"] = hook["ip_address"]
        return info

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        text = params.get("text")
        if not text:
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        return self._new_message(params, text=text)

    def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id, content = self._input_file(params, "photo")
        sizes = []
        for i, side in enumerate((90, 320, 800)):
            largest = i == 2
            size_id = file_id if largest else f"{file_id}-{side}"
            sizes.append(
                {
                    "file_id": size_id,
                    "file_unique_id": f"uniq-{size_id}",
                    "width": side,
                    "height": side,
                    "file_size": len(content) if largest and content else 1000 * (i + 1),
                }
            )
        return self._new_message(params, photo=sizes, **self._caption(params))

    def _send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id, content = self._input_file(params, "document")
        upload = params.get("document")
        document: dict[str, Any] = {"file_id": file_id, "file_unique_id": f"uniq-{file_id}"}
        if isinstance(upload, UploadedFile):
            document.update(
                file_name=upload.filename or "document",
                mime_type=upload.content_type or "application/octet-stream",
                file_size=len(content or b""),
            )
        return self._new_message(params, document=document, **self._caption(params))

    def _send_chat_action(self, params: dict[str, Any]) -> bool:
        self._chat(params)
        return True

    def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = params.get("callback_query_id")
        if not query_id:
            raise _ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self.answered_callbacks.append(query_id)
        return True

    def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        if params.get("inline_message_id"):
            return True
        message = self._stored_message(params)
        markup = self._markup(params)
        if markup == message.get("reply_markup"):
            raise _ApiError(400, _NOT_MODIFIED)
        return self._edit(message, reply_markup=markup)

    def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any] | bool:
        text = params.get("text")
        if not text:
            raise _ApiError(400, "Bad Request: message text is empty")
        if params.get("inline_message_id"):
            return True
        message = self._stored_message(params)
        markup = self._markup(params)
        if text == message.get("text") and markup == message.get("reply_markup"):
            raise _ApiError(400, _NOT_MODIFIED)
        return self._edit(message, text=text, reply_markup=markup)

    def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params.get("file_id", "")
        if file_id not in self._files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        path, content = self._files[file_id]
        return {"file_id": file_id, "file_unique_id": f"uniq-{file_id}", "file_size": len(content), "file_path": path}

    # --- helpers ---------------------------------------------------------------------------------

    def _chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise _ApiError(400, "Bad Request: chat not found")
        if chat_id > 0:
            return {"id": chat_id, "type": "private"}
        return {"id": chat_id, "type": "supergroup" if str(chat_id).startswith("-100") else "group", "title": "Group"}

    def _markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """The inline keyboard to show on the message (other keyboards are not part of a Message)."""
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        rows = markup.get("inline_keyboard")
        if rows is None:
            return None
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _ApiError(400, "Bad Request: can't parse inline keyboard button: InlineKeyboardMarkup must be an Array of Arrays")
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise _ApiError(400, "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and not 1 <= len(str(data).encode()) <= 64:
                    raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        return {"inline_keyboard": rows} if rows else None

    @staticmethod
    def _caption(params: dict[str, Any]) -> dict[str, Any]:
        caption = params.get("caption")
        if caption is None:
            return {}
        if len(caption) > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        return {"caption": caption}

    def _input_file(self, params: dict[str, Any], field: str) -> tuple[str, bytes | None]:
        """The file_id for an uploaded file, a URL or an existing file_id; uploads become gettable."""
        value = params.get(field)
        if isinstance(value, UploadedFile):
            file_id = f"AgAC{field}{next(self._file_ids):06d}"
            ext = (value.filename or "").rpartition(".")[2] or ("jpg" if field == "photo" else "bin")
            self._files[file_id] = (f"{field}s/file_{len(self._files)}.{ext}", value.content)
            return file_id, value.content
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return f"AgAC{field}{next(self._file_ids):06d}", None
        if isinstance(value, str) and value in self._files:
            return value, self._files[value][1]
        if isinstance(value, str) and value:
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        raise _ApiError(400, f"Bad Request: there is no {field} in the request")

    def _new_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat = self._chat(params)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": dict(self.bot_user),
            "chat": chat,
            "date": int(time.time()),
            **content,
        }
        markup = self._markup(params)
        if markup is not None:
            message["reply_markup"] = markup
        self.messages[(chat["id"], message["message_id"])] = message
        return message

    def _stored_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params)
        message = self.messages.get((chat["id"], params.get("message_id")))  # type: ignore[arg-type]
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    @staticmethod
    def _edit(message: dict[str, Any], **changes: Any) -> dict[str, Any]:
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        return message

    # The update builders, also reachable as ``tg.text_update(...)`` etc.
    text_update = staticmethod(text_update)
    start_update = staticmethod(start_update)
    callback_update = staticmethod(callback_update)
    photo_update = staticmethod(photo_update)
    document_update = staticmethod(document_update)
    location_update = staticmethod(location_update)
