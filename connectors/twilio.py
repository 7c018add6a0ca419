"""WhatsApp and SMS through Twilio (the `twilio` library's async client and RequestValidator).

    POST /webhooks/{whatsapp|sms}/webhook   inbound message (form-encoded, X-Twilio-Signature)
    POST /webhooks/{whatsapp|sms}/status    delivery status callback (signed the same way)

Options (resonanz.yml, `connectors.whatsapp` / `connectors.sms`):
    account_sid_env / account_sid, auth_token_env / auth_token   (required)
    from             the sender: "whatsapp:+14155238886" or "+4930123456789" (required)
    public_url       the URL Twilio calls, as Twilio sees it (default: the gateway's public_url);
                     signatures are computed over it, so it must be right behind a reverse proxy
    template_sid     WhatsApp only: an approved Content template (HX...) used for replies outside
                     the 24-hour customer-service window; its variable {{1}} gets the text
    api_base_url     Twilio API base (tests: a local fake); default https://api.twilio.com

Signatures are checked with `RequestValidator` against `public_url` + the request's path and
query: missing or wrong -> 403. `MessageSid` is the provider id, so a retried webhook is stored
once. The same phone number on WhatsApp and SMS is one customer (customer_key "phone:+...").
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog
from aiohttp import web
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

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
from connectors.webhook import RequestRejected, json_error, parse_form, read_body, read_limited
from resonanz.config import ConfigError
from resonanz.media import MAX_MEDIA_BYTES
from resonanz.store.models import utcnow

log = structlog.get_logger(__name__)

MAX_FORM_BYTES = 64 * 1024
MAX_MEDIA_ITEMS = 10
# Ids and phone numbers are short; the database keeps at most 200 characters of an identity.
MAX_ID_CHARS = 100
MAX_PROFILE_NAME = 200
# Twilio's numbers are ASCII; int() and float() would also accept "١٢٣", "²" (isdigit), "nan", "1e400".
ASCII_COUNT = re.compile(r"[0-9]{1,6}")
ASCII_DEGREES = re.compile(r"[-+]?[0-9]{1,3}(\.[0-9]{1,15})?")
WHATSAPP_WINDOW = timedelta(hours=24)
# Messages to one number looked at when an interrupted send is reconciled (the newest ones).
RECONCILE_PAGE = 50
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

# Carrier keywords (whole message, any case). Twilio's defaults plus German equivalents.
SMS_KEYWORDS = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "STOPP", "ABMELDEN",
                     "ABBESTELLEN"), "opt_out"),
    **dict.fromkeys(("START", "YES", "UNSTOP", "ANMELDEN"), "opt_in"),
    **dict.fromkeys(("HELP", "INFO", "HILFE"), "help"),
}

# Twilio error codes that need a clear sentence for the agent.
ERROR_TEXT = {
    21610: "the customer unsubscribed from this number (STOP)",
    21211: "the phone number is not valid",
    21614: "the number cannot receive SMS",
    63016: "outside WhatsApp's 24-hour window: only an approved template may be sent",
}


class Throttled(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("429 Too Many Requests")
        self.retry_after = retry_after


class ResonanzTwilioHttpClient(AsyncTwilioHttpClient):
    """Twilio's async HTTP client, with an optional API base (a local fake in tests) and with
    429 raised together with its Retry-After, which TwilioRestException does not carry.

    With `api_base_url`, requests for http(s)://*.twilio.com go there instead: scheme and host
    are replaced, the base's path is put in front, path and query are kept. Like its base class it
    opens an aiohttp session, so it must be created inside a running event loop and closed.
    """

    def __init__(self, api_base_url: str | None = None, **kwargs: Any) -> None:
        if api_base_url is not None:
            parts = urlsplit(api_base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"api_base_url must be an absolute http(s) URL, not {api_base_url!r}")
        kwargs.setdefault("timeout", 15.0)
        super().__init__(**kwargs)
        self.api_base = api_base_url.rstrip("/") if api_base_url else None

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        twilio_host = host == "twilio.com" or host.endswith(".twilio.com")
        if self.api_base is None or parts.scheme not in ("http", "https") or not twilio_host:
            return url
        base = urlsplit(self.api_base)
        return urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, parts.fragment))

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if auth is not None:
            # The same on the wire as the base class's aiohttp.BasicAuth, which aiohttp 3.14 deprecates.
            headers = {**(headers or {}), "Authorization": aiohttp.encode_basic_auth(*auth)}
        # The base class hands `timeout` to aiohttp as a bare number and never applies its own:
        # without this, a Twilio call that hangs would hang its outbox send for good.
        async with asyncio.timeout(timeout or self.timeout):
            response = await super().request(
                method, self.rewrite(url), params=params, data=data, headers=headers, auth=None,
                allow_redirects=allow_redirects,
            )
        self.check(response)
        return response

    def check(self, response: Response) -> None:
        if response.status_code == 429:
            retry_after = (response.headers or {}).get("Retry-After")
            try:
                seconds = float(retry_after) if retry_after is not None else None
            except ValueError:
                seconds = None
            raise Throttled(seconds)


def phone_of(address: str) -> str:
    """"whatsapp:+49151..." -> "+49151..."."""
    return address.split(":", 1)[1] if address.startswith("whatsapp:") else address


class TwilioConnector(Connector):
    """Shared by WhatsApp and SMS; the subclasses differ in addressing and channel rules."""

    prefix = ""

    def __init__(self, ctx: ConnectorContext) -> None:
        super().__init__(ctx)
        cfg = ctx.config
        missing = [k for k in ("account_sid", "auth_token", "from") if not cfg.get(k)]
        if missing:
            raise ConfigError(f"connector {self.name!r}: missing option(s) {', '.join(missing)}")
        self.account_sid = str(cfg["account_sid"])
        self.auth_token = str(cfg["auth_token"])
        self.sender = str(cfg["from"])
        self.public_url = (cfg.get("public_url") or ctx.settings.public_url or "").rstrip("/") or None
        self.api_base_url = cfg.get("api_base_url")
        try:
            self.timeout = float(cfg.get("timeout", 15.0))
        except (TypeError, ValueError):
            raise ConfigError(f"connector {self.name!r}: option timeout must be a number of seconds") from None
        self.validator = RequestValidator(self.auth_token)
        self.client: Client | None = None
        self._http: ResonanzTwilioHttpClient | None = None

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post(f"/webhooks/{self.name}/webhook", self.webhook),
            web.post(f"/webhooks/{self.name}/status", self.status),
        ]

    async def startup(self) -> None:
        # The async HTTP client must be created inside the running event loop.
        self._http = ResonanzTwilioHttpClient(self.api_base_url, timeout=self.timeout)
        self.client = Client(self.account_sid, self.auth_token, http_client=self._http)

    async def shutdown(self) -> None:
        if self._http is not None:
            await self._http.close()

    # --- signatures ----------------------------------------------------------------------------

    def _public_url(self, request: web.Request) -> str:
        """The URL Twilio signed: the configured public URL plus path and query."""
        if self.public_url:
            return self.public_url + request.rel_url.path_qs
        return str(request.url)

    async def _verified_form(self, request: web.Request, *required: str) -> dict[str, str] | web.Response:
        """The form of a request signed by Twilio for this account, with the `required` fields."""
        if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
            return json_error(413, f"request body is larger than {MAX_FORM_BYTES} bytes")
        signature = request.headers.get("X-Twilio-Signature")
        if not signature:
            return web.json_response({"error": "missing X-Twilio-Signature"}, status=403)
        if not request.content_type.startswith("application/x-www-form-urlencoded"):
            return web.json_response({"error": "expected a form-encoded body"}, status=400)
        try:
            form = parse_form(await read_body(request, MAX_FORM_BYTES))
        except RequestRejected as exc:
            return exc.response()
        if not self.validator.validate(self._public_url(request), form, signature):
            log.warning("twilio.bad_signature", channel=self.name)
            return web.json_response({"error": "invalid X-Twilio-Signature"}, status=403)
        if form.get("AccountSid") not in (None, self.account_sid):
            return web.json_response({"error": "webhook for another account"}, status=403)
        if not all(form.get(field) for field in required):
            return web.json_response({"error": f"{' and '.join(required)} are required"}, status=400)
        too_long = [f for f in ("MessageSid", "From") if len(form.get(f, "")) > MAX_ID_CHARS]
        if too_long:
            return json_error(400, f"{too_long[0]} is longer than {MAX_ID_CHARS} characters")
        return form

    # --- inbound -------------------------------------------------------------------------------

    async def webhook(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request, "MessageSid", "From")
        if isinstance(form, web.Response):
            return form
        sid, sender = form["MessageSid"], form["From"]
        text = form.get("Body", "")
        if len(text) > self.ctx.settings.max_message_chars:
            return web.json_response({"error": "message is too long"}, status=413)
        phone = phone_of(sender)
        try:
            location = self._location(form)
            media = self._media_fields(form)
        except RequestRejected as exc:
            return exc.response()
        attachments = [await self._fetch(url, mime) for url, mime in media]
        if not text.strip():
            text = "[location]" if location else "[photo]" if any(a.kind == "image" for a in attachments) else "[file]" if attachments else ""
        if not text:
            return web.json_response({"error": "empty message"}, status=400)
        inbound = InboundMessage(
            channel=self.name,
            sender_id=phone,
            text=text,
            address=ChannelAddress(channel=self.name, recipient=phone),
            provider_message_id=sid[:200],
            attachments=tuple(attachments),
            location=location,
            display_name=form.get("ProfileName", "")[:MAX_PROFILE_NAME] or None,
            customer_key=f"phone:{phone}",
            control=self._control(text),
        )
        # Acknowledged once stored (Twilio gives a webhook 15 s); the turn runs afterwards and its
        # replies go out through the REST API (the outbox), not in this response.
        await (self.ctx.accept or self.ctx.on_message)(inbound)
        return web.Response(text=TWIML_EMPTY, content_type="text/xml")

    def _control(self, text: str) -> str | None:
        return None

    @staticmethod
    def _location(form: dict[str, str]) -> Location | None:
        lat, lon = form.get("Latitude", ""), form.get("Longitude", "")
        if not lat and not lon:
            return None
        if not (ASCII_DEGREES.fullmatch(lat) and ASCII_DEGREES.fullmatch(lon)):
            raise RequestRejected("Latitude and Longitude must both be decimal degrees (ASCII digits)")
        latitude, longitude = float(lat), float(lon)
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise RequestRejected("Latitude must be within -90..90 and Longitude within -180..180")
        label = form.get("Address") or form.get("Label") or None
        return Location(latitude, longitude, label[:MAX_PROFILE_NAME] if label else None)

    @staticmethod
    def _media_fields(form: dict[str, str]) -> list[tuple[str, str | None]]:
        """(url, declared type) of each attachment; NumMedia is 0-10 (Twilio's own maximum)."""
        raw = form.get("NumMedia", "") or "0"
        if not ASCII_COUNT.fullmatch(raw) or int(raw) > MAX_MEDIA_ITEMS:
            raise RequestRejected(f"NumMedia must be a whole number from 0 to {MAX_MEDIA_ITEMS} (ASCII digits)")
        out: list[tuple[str, str | None]] = []
        for i in range(int(raw)):
            url, mime = form.get(f"MediaUrl{i}"), form.get(f"MediaContentType{i}")
            if not url:
                continue
            try:
                parts = urlsplit(url)
                valid = parts.scheme in ("http", "https") and bool(parts.hostname)
                parts.port  # noqa: B018 - raises ValueError for a port out of range
            except ValueError:
                valid = False
            if not valid:
                raise RequestRejected(f"MediaUrl{i} must be an absolute http(s) URL")
            out.append((url, mime or None))
        return out

    async def _fetch(self, url: str, mime: str | None) -> Attachment:
        """Media URLs need the account's credentials (Twilio redirects to its CDN)."""
        kind = "image" if (mime or "").startswith("image/") else "file"
        try:
            async with self.ctx.http.get(
                url, headers={"Authorization": aiohttp.encode_basic_auth(self.account_sid, self.auth_token)},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as resp:
                if resp.status != 200:
                    raise DeliveryError(f"HTTP {resp.status}")
                content = await read_limited(resp.content, MAX_MEDIA_BYTES)
                if content is None:
                    return Attachment(kind=kind, url="", mime_type=mime, name="media (too large, not stored)")
                mime = mime or resp.content_type
        except (aiohttp.ClientError, asyncio.TimeoutError, DeliveryError, ValueError) as exc:
            log.warning("twilio.media_failed", channel=self.name, error=str(exc))
            return Attachment(kind=kind, url="", mime_type=mime, name="media (download failed)")
        assert self.ctx.media is not None
        return self.ctx.media.save(content, mime)

    async def status(self, request: web.Request) -> web.Response:
        form = await self._verified_form(request, "MessageSid", "MessageStatus")
        if isinstance(form, web.Response):
            return form
        sid, status = form["MessageSid"], form["MessageStatus"]
        error = None
        code = form.get("ErrorCode") or None
        if code is not None and not ASCII_COUNT.fullmatch(code):
            return json_error(400, "ErrorCode must be a number of 1-6 ASCII digits")
        if status in ("failed", "undelivered"):
            reason = ERROR_TEXT.get(int(code)) if code else None
            error = f"Twilio: {status}" + (f" (error {code}" + (f": {reason}" if reason else "") + ")" if code else "")
        known = await self.ctx.on_status(self.name, sid, status, error) if self.ctx.on_status else False
        return web.json_response({"ok": True, "known": known})

    # --- outbound ------------------------------------------------------------------------------

    def _to(self, recipient: str) -> str:
        return f"{self.prefix}{recipient}"

    async def _params(self, address: ChannelAddress, message: OutboundMessage) -> dict[str, Any]:
        params: dict[str, Any] = {
            "to": self._to(address.recipient),
            "from_": self.sender,
            "body": message.as_text_with_options(),
        }
        media = [a for a in message.attachments if a.kind == "image" and a.url]
        if media:
            if self.ctx.media is None or not (self.ctx.media.public_url or media[0].url.startswith("http")):
                raise DeliveryError("a picture needs the gateway's public_url (Twilio fetches it)", permanent=True)
            params["media_url"] = [self.ctx.media.absolute_url(a.url) for a in media]
        if self.public_url:
            params["status_callback"] = f"{self.public_url}/webhooks/{self.name}/status"
        return params

    async def send(self, address: ChannelAddress, message: OutboundMessage) -> str | None:
        if self.client is None:
            raise DeliveryError(f"{self.name} connector is not started")
        params = await self._params(address, message)
        try:
            created = await self.client.messages.create_async(**params)
        except Throttled as exc:
            raise DeliveryError("Twilio: too many requests", retry_after=exc.retry_after) from exc
        except TwilioRestException as exc:
            reason = ERROR_TEXT.get(exc.code or 0) or exc.msg
            text = f"Twilio refused the message (HTTP {exc.status}, error {exc.code}): {reason}"
            raise DeliveryError(text, permanent=400 <= exc.status < 500) from exc
        except (aiohttp.ClientError, asyncio.TimeoutError, TwilioException) as exc:
            raise DeliveryError(f"Twilio unreachable: {type(exc).__name__}") from exc
        return created.sid


    async def sent_since(self, address: ChannelAddress, message: OutboundMessage, since: datetime) -> list[str] | None:
        """Asks Twilio's message list (newest first) for this text to this number since `since`.
        A template message (WhatsApp outside its window) cannot be matched by its text: None."""
        if self.client is None:
            return None
        try:
            params = await self._params(address, message)
        except DeliveryError:
            return None
        if "body" not in params:
            return None
        try:
            listed = await self.client.messages.list_async(to=params["to"], from_=params["from_"], limit=RECONCILE_PAGE,
                                                           page_size=RECONCILE_PAGE)
        except (Throttled, TwilioException, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("twilio.list_failed", channel=self.name, error=type(exc).__name__)
            return None
        return [m.sid for m in listed
                if m.body == params["body"] and m.date_created is not None and m.date_created >= since]


class SmsConnector(TwilioConnector):
    name = "sms"

    def _control(self, text: str) -> str | None:
        return SMS_KEYWORDS.get(text.strip().strip(".!").upper())


class WhatsAppConnector(TwilioConnector):
    name = "whatsapp"
    prefix = "whatsapp:"

    def __init__(self, ctx: ConnectorContext) -> None:
        super().__init__(ctx)
        if not self.sender.startswith("whatsapp:"):
            raise ConfigError("connector 'whatsapp': option from must look like whatsapp:+14155238886")
        self.template_sid = ctx.config.get("template_sid")

    async def _params(self, address: ChannelAddress, message: OutboundMessage) -> dict[str, Any]:
        params = await super()._params(address, message)
        if await self._in_window(address):
            return params
        # Outside the 24-hour window WhatsApp accepts only an approved template.
        if not self.template_sid:
            raise DeliveryError(
                "outside WhatsApp's 24-hour window (the customer last wrote more than 24 hours ago) "
                "and no approved template is configured (connectors.whatsapp.template_sid)",
                permanent=True,
            )
        body = params.pop("body")
        params.pop("media_url", None)
        params["content_sid"] = self.template_sid
        params["content_variables"] = json.dumps({"1": body[:1000]})
        return params

    async def _in_window(self, address: ChannelAddress) -> bool:
        history = await self.ctx.history(self.name, address.recipient)
        if history is None:
            return False
        last_in = max(
            (m.created_at for m in history.inbound), default=None
        )
        return last_in is not None and utcnow() - last_in < WHATSAPP_WINDOW
