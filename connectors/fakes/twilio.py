"""A fake Twilio REST API (Messages and media) on 127.0.0.1:0 for the real twilio client, and
builders for the signed webhooks Twilio sends (inbound WhatsApp/SMS, delivery status).

twilio 9 has no setting for its API base URL; ``RedirectingAsyncHttpClient`` rewrites the
``https://*.twilio.com`` URLs it builds::

    http_client = tw.http_client()            # inside a running event loop
    client = twilio.rest.Client(tw.account_sid, tw.auth_token, http_client=http_client)
    message = await client.messages.create_async(to=..., from_=..., body=...)
    await http_client.close()                 # twilio.rest.Client never closes it
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from connectors.fakes.server import LocalServer
from twilio.http.response import Response
from twilio.request_validator import RequestValidator

from connectors.twilio import ResonanzTwilioHttpClient

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fedcba9876543210" * 2
API_VERSION = "2010-04-01"

# Messages and codes as Twilio's error catalogue words them.
_ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21910: "Invalid From and To pair. From and To should be of the same channel",
    63016: (
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template."
    ),
}
_DEFAULT_CODES = {400: 21211, 401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


class RedirectingAsyncHttpClient(ResonanzTwilioHttpClient):
    """The gateway's Twilio HTTP client (``connectors.twilio``) pointed at ``base_url``, but with
    twilio's own error behaviour (a 429 is a plain ``TwilioRestException``), for tests of the
    library itself. Create it inside a running event loop; close it with ``await client.close()``.
    """

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.base_url = base_url.rstrip("/")

    def check(self, response: Response) -> None:
        return None


@dataclass
class _Failure:
    status: int
    code: int
    message: str
    retry_after: int | None
    to: str | None = None  # only messages to this recipient (None: any)


@dataclass(frozen=True)
class _Media:
    content: bytes
    content_type: str


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _rfc2822(moment: datetime) -> str:
    return email.utils.format_datetime(moment)  # "Wed, 25 Nov 2026 12:35:26 +0000", as Twilio writes it


def _error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    return web.json_response(body, status=status, headers=headers)


def _channel_address(number: str, channel: str) -> str:
    """``+4917...`` as the address on ``channel`` ("whatsapp:+4917..." or "+4917...")."""
    bare = number.removeprefix("whatsapp:")
    return f"whatsapp:{bare}" if channel == "whatsapp" else bare


class FakeTwilio(LocalServer):
    """A local Twilio API for ``Messages.json`` and media downloads, with failure injection.

    ``attempts`` records every POST to Messages.json, ``messages`` only those answered 201. Each
    record is the posted form (Twilio's field names; ``MediaUrl`` always a list) plus two lowercase
    keys of the fake's own: ``sid`` (the Message SID, ``None`` if rejected) and ``http_status``.
    """

    def __init__(self, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN) -> None:
        if not (len(account_sid) == 34 and account_sid.startswith("AC")):
            raise ValueError("account_sid must be 'AC' followed by 32 hex digits")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.validator = RequestValidator(auth_token)
        self.messages: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self.media_requests: list[tuple[str, int]] = []  # (path, HTTP status) of every media GET
        self._media: dict[str, _Media] = {}
        self._failures: list[_Failure] = []
        self._list_failures: list[int] = []
        self._resources: list[dict[str, Any]] = []  # every accepted message's resource, oldest first
        self._hold: tuple[int, asyncio.Event, asyncio.Event] | None = None
        self._changed = asyncio.Condition()

    # --- lifecycle -------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.post(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self._handle_create_message),
                web.get(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json", self._handle_list_messages),
                web.get("/{path:.*}", self._handle_media),
                web.route("*", "/{path:.*}", self._handle_unknown),
            ]
        )
        return app

    @property
    def base_url(self) -> str:
        return self.origin

    def http_client(self, **kwargs: Any) -> RedirectingAsyncHttpClient:
        """An async HTTP client for ``twilio.rest.Client`` that talks to this fake.

        Call inside a running event loop; close it with ``await http_client.close()``.
        """
        return RedirectingAsyncHttpClient(self.base_url, **kwargs)

    # --- test controls ---------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        code: int | None = None,
        message: str | None = None,
        to: str | None = None,
    ) -> None:
        """Answer the next ``times`` Messages.json POSTs with a Twilio error of HTTP ``status``.

        ``code`` defaults by status (400: 21211, 429: 20429, 500: 20500, ...); ``message`` defaults
        to Twilio's wording for the code. ``retry_after`` adds a Retry-After header (429 default: 1).
        ``to`` limits the failures to messages for that recipient (others pass untouched).
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        code = code or _DEFAULT_CODES.get(status, status)
        text = message or _ERROR_MESSAGES.get(code, f"Error {code}")
        self._failures.extend(_Failure(status, code, text, retry_after, to) for _ in range(times))

    def fail_next_list(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` Messages.json GETs (the message list) with HTTP ``status``."""
        self._list_failures.extend([status] * times)

    def hold(self, skip: int = 0) -> tuple[asyncio.Event, asyncio.Event]:
        """Hold one Messages.json POST, the one after the next ``skip``: ``entered`` is set when it
        arrives, and it is answered only once the test sets ``release`` (a slow provider call)."""
        entered, release = asyncio.Event(), asyncio.Event()
        self._hold = (skip, entered, release)
        return entered, release

    def add_media(self, path: str, content: bytes, content_type: str) -> str:
        """Serve ``content`` at ``{base_url}{path}`` to requests with the account's basic auth.

        Returns the absolute URL (usable as MediaUrl0 of an inbound webhook).
        """
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        self._media[path] = _Media(content, content_type)
        return f"{self.base_url}{path}"

    def media_path(self, message_sid: str | None = None) -> str:
        """A path shaped like Twilio's media URLs: /2010-04-01/Accounts/AC…/Messages/MM…/Media/ME…"""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message_sid or _sid('MM')}/Media/{_sid('ME')}"

    async def wait_for_message(
        self,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5,
        *,
        since: int = 0,
    ) -> dict[str, Any]:
        """The first accepted message (from ``messages[since:]``) satisfying ``predicate``.

        Returns at once if one was already recorded; otherwise waits for it.
        """

        def match() -> dict[str, Any] | None:
            return next((m for m in self.messages[since:] if predicate is None or predicate(m)), None)

        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    return await self._changed.wait_for(match)
        except TimeoutError:
            summary = [(a.get("To"), a.get("Body"), a["http_status"]) for a in self.attempts]
            raise TimeoutError(f"no matching message within {timeout}s; attempts (To, Body, status): {summary}") from None

    # --- webhooks Twilio sends -------------------------------------------------------------------

    def signed_webhook(self, url: str, params: Mapping[str, str]) -> tuple[dict[str, str], str]:
        """Headers (with X-Twilio-Signature) and the form body Twilio would POST to ``url``.

        ``url`` must be exactly the URL the receiver will validate against (scheme, host, port,
        path, query).
        """
        signature = self.validator.compute_signature(url, dict(params))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
            "User-Agent": "TwilioProxy/1.1",
        }
        return headers, urlencode(params)

    async def post_webhook(self, url: str, params: Mapping[str, str]) -> tuple[int, str]:
        """POST a signed webhook to ``url`` as Twilio does; returns (HTTP status, body)."""
        headers, body = self.signed_webhook(url, params)
        async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as r:
            return r.status, await r.text()

    def whatsapp_params(
        self,
        from_number: str,
        body: str,
        message_sid: str | None = None,
        num_media: int = 0,
        media: Sequence[tuple[str, str]] = (),
        profile_name: str | None = None,
        to: str = "whatsapp:+4930123456",
    ) -> dict[str, str]:
        """The form fields of an inbound WhatsApp message; ``media`` is [(url, content_type), ...]."""
        sender = _channel_address(from_number, "whatsapp")
        params = self._inbound_params(sender, _channel_address(to, "whatsapp"), body, message_sid, num_media, media)
        params["WaId"] = sender.removeprefix("whatsapp:+")
        params["MessageType"] = "image" if media else "text"
        if profile_name is not None:
            params["ProfileName"] = profile_name
        return params

    def sms_params(
        self,
        from_number: str,
        body: str,
        message_sid: str | None = None,
        num_media: int = 0,
        media: Sequence[tuple[str, str]] = (),
        to: str = "+4930123456",
    ) -> dict[str, str]:
        """The form fields of an inbound SMS (MMS if ``media`` is given)."""
        params = self._inbound_params(
            _channel_address(from_number, "sms"), _channel_address(to, "sms"), body, message_sid, num_media, media
        )
        params.update(FromCountry="DE", ToCountry="DE")
        return params

    def status_params(
        self,
        message_sid: str,
        status: str,
        error_code: int | str | None = None,
        channel: str | None = None,
        *,
        to: str | None = None,
        from_: str | None = None,
    ) -> dict[str, str]:
        """The form fields of a delivery status callback (``status``: sent, delivered, read, failed...).

        To/From/channel default to those of the accepted message with that SID, if there is one.
        """
        sent = next((m for m in self.messages if m["sid"] == message_sid), {})
        to = to or sent.get("To") or "+4917612345678"
        from_ = from_ or sent.get("From") or "+4930123456"
        channel = channel or ("whatsapp" if to.startswith("whatsapp:") else "sms")
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": message_sid,
            "SmsSid": message_sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": _channel_address(to, channel),
            "From": _channel_address(from_, channel),
        }
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        if channel == "whatsapp":
            params["ChannelPrefix"] = "whatsapp"
            params["ChannelToAddress"] = params["To"].removeprefix("whatsapp:")
        return params

    def _inbound_params(
        self,
        sender: str,
        to: str,
        body: str,
        message_sid: str | None,
        num_media: int,
        media: Sequence[tuple[str, str]],
    ) -> dict[str, str]:
        sid = message_sid or _sid("MM" if media else "SM")
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "SmsStatus": "received",
            "From": sender,
            "To": to,
            "Body": body,
            "NumMedia": str(max(num_media, len(media))),
            "NumSegments": "1",
        }
        for i, (url, content_type) in enumerate(media):
            params[f"MediaUrl{i}"] = url
            params[f"MediaContentType{i}"] = content_type
        return params

    # --- HTTP ------------------------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(login, self.account_sid) & secrets.compare_digest(password, self.auth_token)

    async def _handle_create_message(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        if request.match_info["account_sid"] != self.account_sid:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        form = await request.post()  # received whole: a held request is created even if its caller gave up
        if self._hold is not None:
            skip, entered, release = self._hold
            self._hold = (skip - 1, entered, release) if skip else None
            if not skip:
                entered.set()
                await release.wait()

        record: dict[str, Any] = {k: str(v) for k, v in form.items() if k not in ("MediaUrl", "PersistentAction")}
        record["MediaUrl"] = [str(v) for v in form.getall("MediaUrl", [])]
        if "PersistentAction" in form:
            record["PersistentAction"] = [str(v) for v in form.getall("PersistentAction")]

        f = next((f for f in self._failures if f.to is None or f.to == record.get("To")), None)
        if f is not None:
            self._failures.remove(f)
            headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else None
            response = _error(f.status, f.code, f.message, headers)
        else:
            response = self._validate(record)
        if response is not None:
            await self._record(record, sid=None, http_status=response.status)
            return response

        sid = _sid("MM" if record["MediaUrl"] else "SM")
        resource = self._message_resource(sid, record)
        self._resources.append(resource)
        await self._record(record, sid=sid, http_status=201)
        return web.json_response(resource, status=201)

    async def _handle_list_messages(self, request: web.Request) -> web.Response:
        """The account's messages, newest first, filtered by ``To`` and ``From`` like Twilio's
        list (one page of ``PageSize``, at most 1000)."""
        if not self._authorised(request):
            return _error(401, 20003, "Authenticate")
        if request.match_info["account_sid"] != self.account_sid:
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        if self._list_failures:
            status = self._list_failures.pop(0)
            return _error(status, _DEFAULT_CODES.get(status, status), f"Error {status}")
        q = request.query
        size = min(1000, int(q.get("PageSize", "50")))
        found = [r for r in reversed(self._resources)
                 if q.get("To") in (None, r["to"]) and q.get("From") in (None, r["from"])][:size]
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        return web.json_response({"messages": found, "end": max(0, len(found) - 1), "first_page_uri": uri,
                                  "next_page_uri": None, "page": 0, "page_size": size,
                                  "previous_page_uri": None, "start": 0, "uri": uri})

    async def _handle_media(self, request: web.Request) -> web.Response:
        media = self._media.get(request.path)
        if media is None:
            self.media_requests.append((request.path, 404))
            return _error(404, 20404, f"The requested resource {request.path} was not found")
        if not self._authorised(request):
            self.media_requests.append((request.path, 401))
            return _error(401, 20003, "Authenticate")
        self.media_requests.append((request.path, 200))
        return web.Response(body=media.content, headers={"Content-Type": media.content_type})

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        return _error(404, 20404, f"The requested resource {request.path} was not found")

    async def _record(self, record: dict[str, Any], *, sid: str | None, http_status: int) -> None:
        record.update(sid=sid, http_status=http_status)
        async with self._changed:
            self.attempts.append(record)
            if sid is not None:
                self.messages.append(record)
            self._changed.notify_all()

    @staticmethod
    def _validate(record: dict[str, Any]) -> web.Response | None:
        """The checks Twilio makes before accepting a message that the fake can make too."""
        to, sender = record.get("To"), record.get("From")
        if not to:
            return _error(400, 21604, _ERROR_MESSAGES[21604])
        if not sender and not record.get("MessagingServiceSid"):
            return _error(400, 21603, _ERROR_MESSAGES[21603])
        if not record.get("Body") and not record["MediaUrl"] and not record.get("ContentSid"):
            return _error(400, 21602, _ERROR_MESSAGES[21602])
        if sender and to.startswith("whatsapp:") != sender.startswith("whatsapp:"):
            return _error(400, 21910, _ERROR_MESSAGES[21910])
        if len(record.get("Body", "")) > 1600:
            return _error(400, 21617, _ERROR_MESSAGES[21617])
        return None

    def _message_resource(self, sid: str, record: dict[str, Any]) -> dict[str, Any]:
        now = _rfc2822(datetime.now(UTC))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": record.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": record.get("From"),
            "messaging_service_sid": record.get("MessagingServiceSid"),
            "num_media": str(len(record["MediaUrl"])),
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if record.get("MessagingServiceSid") and not record.get("From") else "queued",
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": record["To"],
            "uri": f"{uri}.json",
        }
