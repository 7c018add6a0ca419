"""Web chat: a WebSocket endpoint and an embeddable widget (Preact + htm, vendored; no build step).

Files (connectors/webchat/static): widget.js is the loader a host page embeds; it mounts the chat
(app.mjs, with the vendored Preact served here as /webchat/vendor/*.mjs) in a Shadow DOM so the
host page's CSS cannot reach it. Optional modules listed in EXTENSIONS (continue.js) are mounted
by the chat when the file exists (docs/webchat.md).

Protocol (JSON text frames on /webchat/ws):
    client → {"type": "hello", "token": "<server-issued token>" | absent, "language": "de"|"en"|null}
    server → {"type": "session", "token", "idle_days"}       (only to a hello without a token)
    server → {"type": "history", "conversation_id", "state", "language", "welcome", "extensions",
              "max_upload_bytes", "messages": [...]}
              (a message from the customer may carry "display": the title of the button pressed)
    client → {"type": "message", "text": "...", "client_id": "<id>", "display": "<button title>"?,
              "callback": {"via": "phone"|"email", "contact": "..."}?}
              (callback: while waiting, the text is a message left for a callback or an e-mail;
              a contact the server refuses gets an error with code "callback_contact")
    server → {"type": "ack", "client_id", "message_id", "conversation_id", "state", "duplicate", "timestamp"}
    server → {"type": "message", "id", "author", "text", "buttons", "attachments", "timestamp", "sender_name"?,
              "sender_avatar"?, "language"?}  (sender_avatar: the URL of the agent's picture, one of
              the gateway's /media/ files; language: the conversation's language when the reply was
              written - the chat's own labels follow it)
    server → {"type": "typing", "name"}                       (an agent is typing; never stored)
    server → {"type": "error", "error": "<what is wrong>", "code"?, "client_id"?}

Identity: the server issues the session token (connectors/webchat/sessions.py: 32 random bytes,
only its SHA-256 stored, idle expiry `session_idle_days`); the widget keeps it in localStorage
and presents it in every hello. A token the server did not issue, or one that expired, gets an
error frame with code "session_invalid" and the close code 4401; the widget then forgets it and
asks for a new one. The customer's identity is the session's public id, never the token.

Before the upgrade the Origin header must be the gateway's own origin or one listed in
`allowed_origins` (403 otherwise). Frames are limited per socket (`rate_limit_socket`) and per
client address (`rate_limit_ip`) - over the limit a frame is answered with code "rate_limited"
and dropped; at most `queue_size` messages wait per socket (code "queue_full" beyond). Replies
reach every open socket of the session through `send()`, and a customer's message reaches the
session's other sockets as a "message" frame with author "customer", so several tabs stay in step; a
session with no open socket finds them in its history on reconnect. With `RESONANZ_REDIS_URL`
set, `send()` on any gateway process reaches the session's sockets on every process
(connectors/webchat/relay.py). A "history" frame may come again on an open socket (after the
gateway lost its Redis connection): the client shows what it does not show yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from aiohttp import BodyPartReader, WSCloseCode, WSMsgType, web
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from connectors.base import (
    ChannelAddress,
    Connector,
    ConnectorContext,
    InboundMessage,
    OutboundMessage,
    PushedLive,
)
from connectors.webchat.origins import OriginPolicy
from connectors.webchat.relay import create_relay
from connectors.webchat.sessions import TOUCH_EVERY, SessionStore
from resonanz import continuity
from resonanz.client_ip import client_address
from resonanz.config import ConfigError
from resonanz.contact import check_contact
from resonanz.media import sniff_image
from resonanz.texts import text

log = structlog.get_logger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_FRAME = 64 * 1024
MAX_CLIENT_ID = 64
# Close code for a token the server did not issue or that expired (like HTTP 401).
CLOSE_SESSION_INVALID = 4401
DEFAULTS: dict[str, Any] = {
    "allowed_origins": [],
    "session_idle_days": 30,
    # A person types far slower; a reconnect resends a few unacknowledged frames at once.
    "rate_limit_socket": "20 per 10 seconds",
    # Many customers can share one address (an office, a mobile carrier's NAT).
    "rate_limit_ip": "300 per minute",
    "queue_size": 8,
    # The title of the stand-alone chat page (/chat): the bot's name, from resonanz.yml.
    "title": "Customer service",
    # What the chat shows on open, in the browser's language (resonanz.yml names the bot's tasks):
    # {"de": "...", "en": "..."} and a list of {"title": {"de", "en"}, "payload": "/intent"}.
    "greeting": {lang: text("webchat.greeting", lang) for lang in ("de", "en")},
    "tasks": [],
    # Pictures (PNG, JPEG, GIF, WebP) and PDFs a customer sends, checked by their content; the
    # same 5 MB limit as an agent's picture.
    "max_upload_bytes": 5 * 1000 * 1000,
}
# Optional UI modules in static/ the chat mounts when present (each exports mount(slot, api)).
EXTENSIONS = ("continue.js",)
VENDOR = Path(__file__).resolve().parents[2] / "resonanz" / "static" / "vendor"
_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _timestamp(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _limit(key: str, value: Any) -> RateLimitItem:
    try:
        return parse(str(value))
    except ValueError as exc:
        raise ConfigError(f"connector 'webchat': {key} {value!r} is not a rate like '20 per 10 seconds'") from exc


def _pick(value: Any, language: str) -> str:
    """A text given per language ({"de": ..., "en": ...}) or as one string."""
    if isinstance(value, dict):
        return str(value.get(language) or value.get("de") or next(iter(value.values()), ""))
    return str(value or "")


def _welcome(options: dict[str, Any], language: str) -> dict[str, Any]:
    tasks = options["tasks"]
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and "payload" in t and "title" in t for t in tasks):
        raise ConfigError("connector 'webchat': tasks must be a list of {title, payload}")
    return {"text": _pick(options["greeting"], language),
            "tasks": [{"title": _pick(t["title"], language), "payload": str(t["payload"])} for t in tasks]}


def parse_frame(raw: str) -> dict[str, Any] | str:
    """A text frame as a JSON object, or the error to answer (never an exception)."""
    try:
        data = json.loads(raw)
    except RecursionError:
        return "frame is nested too deeply"
    except ValueError:
        return "frame is not valid JSON"
    if not isinstance(data, dict):
        return "frame must be a JSON object"
    return data


def text_problem(name: str, value: str) -> str | None:
    """Why a string field cannot be stored (PostgreSQL refuses NUL and lone surrogates)."""
    if "\x00" in value:
        return f"field {name!r} must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"field {name!r} is not valid Unicode (lone surrogate)"
    return None


def _static(path: Path) -> web.StreamResponse:
    """A file of the widget. Public code (no customer data), so any page may load it: the host
    page embedding the widget imports the modules from here, and module scripts need CORS."""
    if not path.is_file():
        raise web.HTTPNotFound(text="no such file")
    return web.FileResponse(path, headers={
        "Content-Type": _TYPES.get(path.suffix, "application/octet-stream"),
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*",
    })


class WebChatConnector(Connector):
    name = "webchat"
    # Stored messages reach the customer by push now or with the history after a reconnect.
    delivery = PushedLive()

    def __init__(self, ctx: ConnectorContext) -> None:
        super().__init__(ctx)
        self.max_chars = ctx.settings.max_message_chars
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}
        self._open: set[web.WebSocketResponse] = set()  # every open socket, with a session or not
        options = {**DEFAULTS, **dict(ctx.config)}
        self.page_html = (STATIC / "chat.html").read_text(encoding="utf-8").replace(
            "{{title}}", html.escape(str(options["title"]))
        )
        allowed = options["allowed_origins"]
        if isinstance(allowed, str) or not isinstance(allowed, list | tuple):
            raise ConfigError("connector 'webchat': allowed_origins must be a list of origins")
        self.origins = OriginPolicy(ctx.settings.public_url, allowed)
        idle_days = options["session_idle_days"]
        if isinstance(idle_days, bool) or not isinstance(idle_days, int | float) or idle_days <= 0:
            raise ConfigError("connector 'webchat': session_idle_days must be a positive number of days")
        self.idle_days = idle_days
        if ctx.db is None:
            raise ConfigError("connector 'webchat' needs the gateway's database for its sessions")
        self.sessions = SessionStore(ctx.db, timedelta(days=idle_days))
        self.socket_limit = _limit("rate_limit_socket", options["rate_limit_socket"])
        self.ip_limit = _limit("rate_limit_ip", options["rate_limit_ip"])
        queue_size = options["queue_size"]
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or not 1 <= queue_size <= 1000:
            raise ConfigError("connector 'webchat': queue_size must be a whole number from 1 to 1000")
        self.queue_size = queue_size
        self.welcome = {lang: _welcome(options, lang) for lang in ("de", "en")}
        max_upload = options["max_upload_bytes"]
        if isinstance(max_upload, bool) or not isinstance(max_upload, int) or max_upload <= 0:
            raise ConfigError("connector 'webchat': max_upload_bytes must be a positive whole number")
        self.max_upload = max_upload
        self.extensions = [name for name in EXTENSIONS if (STATIC / name).is_file()]
        self._redis_pool: Any = None
        self._limiter = MovingWindowRateLimiter(self._limit_storage(ctx))
        # Sockets of a session held by other gateway processes get its frames through Redis.
        self.relay = create_relay(ctx.settings.redis_url, ctx.settings.redis_channel,
                                  deliver=self._push_local, resync=self._resync)
        self._resyncing = asyncio.Semaphore(8)  # history reads at once after a lost Redis connection

    def _limit_storage(self, ctx: ConnectorContext) -> Storage:
        """Redis when the gateway has one (so the per-address limit holds across processes),
        else this process's memory."""
        url = ctx.settings.redis_url
        if not url:
            return MemoryStorage()
        from redis.asyncio import ConnectionPool

        # Our own pool, so that shutdown() can close its connections.
        self._redis_pool = ConnectionPool.from_url(url)
        return RedisStorage(f"async+{url}", implementation="redispy", connection_pool=self._redis_pool,
                            key_prefix=f"{ctx.settings.redis_channel}:webchat-limits")

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/chat", self.page),
            web.get("/webchat/widget.js", self.static_file),
            web.get("/webchat/app.mjs", self.static_file),
            web.get("/webchat/app.css", self.static_file),
            web.get("/webchat/favicon.svg", self.static_file),
            web.get("/webchat/vendor/{name}", self.vendor_file),
            *(web.get(f"/webchat/{name}", self.static_file) for name in EXTENSIONS),
            web.post("/webchat/continue", self.continue_code),
            web.options("/webchat/continue", self.continue_preflight),
            web.get("/webchat/ws", self.websocket),
            web.post("/webchat/upload", self.upload),
            web.options("/webchat/upload", self.upload_preflight),
        ]

    # --- pages -----------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=self.page_html, content_type="text/html", headers=SECURITY_HEADERS)

    async def static_file(self, request: web.Request) -> web.StreamResponse:
        return _static(STATIC / request.path.rsplit("/", 1)[-1])

    async def vendor_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ("preact.mjs", "hooks.mjs", "htm.mjs"):
            raise web.HTTPNotFound(text="no such file")
        return _static(VENDOR / name)

    # --- uploads ---------------------------------------------------------------------------

    def _cors(self, request: web.Request) -> dict[str, str]:
        origin = request.headers.get("Origin")
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}

    async def upload_preflight(self, request: web.Request) -> web.StreamResponse:
        """The widget on an allowed site posts its file here with the session token."""
        if not self.origins.allows(request):
            return web.Response(status=403)
        return web.Response(status=204, headers={
            **self._cors(request), "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Authorization", "Access-Control-Max-Age": "600"})

    async def upload(self, request: web.Request) -> web.StreamResponse:
        """A picture or PDF from the customer: multipart field `file` (+ `client_id`), the
        session token as `Authorization: Bearer`. Checked by its content, stored like any file a
        customer sends (agents only may fetch it), then a message of the conversation."""
        if not self.origins.allows(request):
            return web.json_response({"error": "this page's origin may not use the web chat"}, status=403)
        cors = self._cors(request)

        def refuse(status: int, error: str, code: str) -> web.Response:
            return web.json_response({"error": error, "code": code}, status=status, headers=cors)

        auth = request.headers.get("Authorization", "")
        public_id = await self.sessions.resolve(auth[7:]) if auth.startswith("Bearer ") else None
        if public_id is None:
            return refuse(401, "unknown or expired session", "session_invalid")
        if not await self._allowed(f"upload:{public_id}", client_address(
                request.remote, request.headers.getall("X-Forwarded-For", ()), self.ctx.settings.trusted_proxies)):
            return refuse(429, "too many frames; please slow down", "rate_limited")
        limit_mb = f"{self.max_upload / 1e6:g} MB"
        if request.content_length is not None and request.content_length > self.max_upload + 16 * 1024:
            return refuse(413, f"the file is larger than {limit_mb}", "too_large")
        content, name, client_id = b"", None, None
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader) or part.name not in ("file", "client_id"):
                    return refuse(400, "expected the fields file and client_id", "bad_request")
                if part.name == "client_id":
                    client_id = (await part.read(decode=False))[:MAX_CLIENT_ID].decode("utf-8", "replace")
                    continue
                name = (part.filename or "")[:200] or None
                chunks, size = [], 0
                while chunk := await part.read_chunk(65536):
                    size += len(chunk)
                    if size > self.max_upload:
                        return refuse(413, f"the file is larger than {limit_mb}", "too_large")
                    chunks.append(chunk)
                content = b"".join(chunks)
        except (ValueError, AssertionError):
            return refuse(400, "the body is not multipart/form-data", "bad_request")
        mime = sniff_image(content) or ("application/pdf" if content.startswith(b"%PDF-") else None)
        if mime is None:
            return refuse(415, "only pictures (PNG, JPEG, GIF, WebP) and PDF files can be sent", "unsupported")
        if self.ctx.media is None:
            return refuse(503, "files cannot be received here", "unavailable")
        if name and text_problem("name", name):
            name = None
        attachment = self.ctx.media.save(content, mime, name)
        received = datetime.now(UTC)
        result = await self.ctx.on_message(InboundMessage(
            channel=self.name, sender_id=public_id, text="", address=ChannelAddress(self.name, public_id),
            provider_message_id=client_id if client_id and not text_problem("client_id", client_id) else None,
            attachments=(attachment,), received_at=received,
        ))
        if not result.duplicate and result.message_id:
            mine = {"type": "message", "id": result.message_id, "direction": "in", "author": "customer",
                    "text": "", "buttons": [], "attachments": [attachment.to_dict()],
                    "timestamp": received.isoformat()}
            await self._push_local(public_id, mine)
            self.relay.publish(public_id, mine)
        return web.json_response({"message_id": result.message_id, "state": result.state}, status=201, headers=cors)

    @staticmethod
    def _cors(request: web.Request) -> dict[str, str]:
        """For a widget embedded on an allowed site (the caller checked the origin)."""
        return {"Access-Control-Allow-Origin": request.headers["Origin"], "Vary": "Origin"}

    async def continue_preflight(self, request: web.Request) -> web.StreamResponse:
        if not self.origins.allows(request):
            return web.json_response({"error": "this page's origin may not use the web chat"}, status=403)
        return web.Response(status=204, headers={**self._cors(request), "Access-Control-Allow-Methods": "POST",
                                                 "Access-Control-Allow-Headers": "Authorization",
                                                 "Access-Control-Max-Age": "600"})

    async def continue_code(self, request: web.Request) -> web.StreamResponse:
        """A continue code for the session's conversation (resonanz/continuity.py), with its links
        and a QR code. Authenticated by the session token (`Authorization: Bearer <token>`), from
        an allowed origin only, counted like frames per address."""
        if not self.origins.allows(request):
            return web.json_response({"error": "this page's origin may not use the web chat"}, status=403)
        response = await self._continue_code(request)
        response.headers.update(self._cors(request))
        return response

    async def _continue_code(self, request: web.Request) -> web.Response:
        ip = client_address(request.remote, request.headers.getall("X-Forwarded-For", ()),
                            self.ctx.settings.trusted_proxies)
        if not await self._allowed("continue:" + ip, ip):
            return web.json_response({"error": "too many requests; please slow down"}, status=429)
        auth = request.headers.get("Authorization", "")
        public_id = await self.sessions.resolve(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None
        if public_id is None:
            return web.json_response({"error": "unknown or expired session"}, status=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        history = await self.ctx.history(self.name, public_id)
        if history is None or history.conversation_id is None:
            return web.json_response({"error": "there is no conversation to continue yet"}, status=409)
        language = request.query.get("language")
        try:
            issued = await continuity.issue(self.ctx.db, history.conversation_id, self.ctx.settings)  # type: ignore[arg-type]
        except continuity.NothingToContinue:
            return web.json_response({"error": "this conversation has ended"}, status=409)
        links = continuity.links(issued.code, self.ctx.settings, language if language in ("de", "en") else None,
                                 origin=f"{request.scheme}://{request.host}")
        return web.json_response({
            "code": issued.code,
            "expires_at": issued.expires_at.isoformat(),
            "links": links,
            "qr": continuity.qr_svg_data_uri(links["browser"]),
        }, headers={"Cache-Control": "no-store"})

    # --- outbound --------------------------------------------------------------------------

    async def send(self, address: ChannelAddress, message: OutboundMessage) -> None:
        frame = {
            "type": "message",
            "id": message.message_id,
            "author": message.author,
            "text": message.text,
            "buttons": [b.to_dict() for b in message.buttons],
            "attachments": [a.to_dict() for a in message.attachments],
            "timestamp": _timestamp(message.created_at),
            **({"sender_name": message.sender_name} if message.sender_name else {}),
            **({"sender_avatar": message.sender_avatar} if message.sender_avatar else {}),
            **({"language": message.language} if message.language else {}),
        }
        # Here at once, elsewhere through the relay (which never brings our own frames back).
        await self._push_local(address.recipient, frame)
        self.relay.publish(address.recipient, frame)

    async def signal(self, address: ChannelAddress, kind: str, data: dict[str, Any]) -> None:
        if kind == "typing":
            frame = {"type": "typing", "name": str(data.get("name") or "")[:200]}
            await self._push_local(address.recipient, frame)
            self.relay.publish(address.recipient, frame)

    async def _push_local(self, session_id: str, frame: dict[str, Any], skip: Any = None) -> None:
        """A frame to every socket of the session this process holds (but `skip`)."""
        for ws in list(self._sockets.get(session_id, ())):
            if ws is skip:
                continue
            try:
                await ws.send_json(frame)
            except (ConnectionError, RuntimeError):
                self._forget(session_id, ws)

    async def _resync(self, session_ids: Any) -> None:
        """Each socket of these sessions gets the history again (frames may have been missed)."""

        async def one(session_id: str) -> None:
            async with self._resyncing:
                if not self._sockets.get(session_id):
                    return
                frame = await self._history_frame(session_id)
                await self._push_local(session_id, frame)

        await asyncio.gather(*(one(s) for s in session_ids))

    async def startup(self) -> None:
        await self.relay.start()

    async def drain(self) -> None:
        """The gateway stops: 1012 "service restart" tells the widget to reconnect (with back-off);
        it gets what it missed with the history."""
        await asyncio.gather(*(ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"service restart")
                               for ws in list(self._open)), return_exceptions=True)

    async def shutdown(self) -> None:
        await self.drain()
        self._sockets.clear()
        await self.relay.close()
        if self._redis_pool is not None:
            await self._redis_pool.disconnect()

    async def _remember(self, session_id: str, ws: web.WebSocketResponse) -> None:
        sockets = self._sockets.setdefault(session_id, set())
        if ws not in sockets:
            sockets.add(ws)
            await self.relay.join(session_id)

    def _forget(self, session_id: str, ws: web.WebSocketResponse) -> None:
        sockets = self._sockets.get(session_id)
        if sockets is not None and ws in sockets:
            sockets.discard(ws)
            if not sockets:
                del self._sockets[session_id]
            self.relay.leave(session_id)

    # --- inbound ---------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        if not self.origins.allows(request):
            # Before the upgrade: another site's page must not open a chat in its visitor's name.
            return web.json_response({"error": "this page's origin may not open the web chat"}, status=403)
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, heartbeat=30)
        await ws.prepare(request)
        self._open.add(ws)
        # `id` is the session's public id once a hello succeeded; the token is never kept here.
        session: dict[str, Any] = {"id": None, "language": None, "touched": 0.0}
        # Behind a trusted reverse proxy every customer would share the proxy's address.
        ip = client_address(request.remote, request.headers.getall("X-Forwarded-For", ()),
                            self.ctx.settings.trusted_proxies)
        socket_key = uuid.uuid4().hex
        # Frames of one socket are handled in order, but off the reading loop, so a slow
        # engine turn never stops the socket from answering pings. Bounded: a client that sends
        # faster than its turns are answered is told so instead of growing the queue.
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=self.queue_size)
        worker = asyncio.ensure_future(self._work(ws, session, queue))
        try:
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    data = parse_frame(frame.data)
                    if not await self._allowed(socket_key, ip):
                        # With the client_id, so the widget shows which message did not go out.
                        await self._error(ws, "too many frames; please slow down",
                                          data.get("client_id") if isinstance(data, dict) else None, code="rate_limited")
                        continue
                    if isinstance(data, str):
                        await self._error(ws, data)
                    elif data.get("type") == "hello":
                        await self._hello(ws, session, data)
                    else:
                        try:
                            queue.put_nowait(data)
                        except asyncio.QueueFull:
                            await self._error(ws, "too many messages are waiting; please wait for the answers",
                                              data.get("client_id"), code="queue_full")
                elif frame.type == WSMsgType.BINARY:
                    await self._error(ws, "binary frames are not supported")
                elif frame.type == WSMsgType.ERROR:
                    break
        finally:
            # Messages already received are still processed (and stored) after a disconnect.
            await queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            if session["id"] is not None:
                self._forget(session["id"], ws)
            self._open.discard(ws)
        return ws

    async def _allowed(self, socket_key: str, ip: str) -> bool:
        try:
            return await self._limiter.hit(self.socket_limit, "socket", socket_key) and await self._limiter.hit(
                self.ip_limit, "ip", ip
            )
        except Exception:  # noqa: BLE001 - Redis away: the chat goes on (the queue stays bounded)
            log.warning("webchat.rate_limit_unavailable", exc_info=True)
            return True

    async def _hello(self, ws: web.WebSocketResponse, session: dict[str, Any], data: dict[str, Any]) -> None:
        try:
            await self._hello_checked(ws, session, data)
        except Exception:  # noqa: BLE001 - a store failure must not kill the socket
            log.exception("webchat.hello_failed", session=session["id"])
            await self._error(ws, "the chat could not be opened; please try again")

    async def _hello_checked(self, ws: web.WebSocketResponse, session: dict[str, Any], data: dict[str, Any]) -> None:
        token = data.get("token")
        customer_key = None
        if data.get("identity") is not None:
            # Signed by the embedding site (resonanz/continuity.py): links this browser to the
            # host's user on every device. A signature that does not verify opens no chat.
            customer_key = continuity.verified_host_key(data["identity"], self.ctx.settings.webchat_identity_secret)
            if customer_key is None:
                await self._error(ws, "the signed identity does not verify", code="identity_invalid")
                return
        if token is None:
            public_id, issued = await self.sessions.issue()
            await ws.send_json({"type": "session", "token": issued, "idle_days": self.idle_days})
        else:
            public_id = await self.sessions.resolve(token)
            if public_id is None:
                await self._error(ws, "unknown or expired session; ask for a new one with a hello without a token",
                                  code="session_invalid")
                await ws.close(code=CLOSE_SESSION_INVALID, message=b"session invalid")
                return
        if session["id"] is not None and session["id"] != public_id:
            self._forget(session["id"], ws)
        language = data.get("language")
        session["id"] = public_id
        session["customer_key"] = customer_key
        session["language"] = language if language in ("de", "en") else None
        session["touched"] = asyncio.get_running_loop().time()
        # Registered (and, with Redis, subscribed) before the history is read: a message stored
        # meanwhile comes live or with the history, maybe both (the client skips known ids).
        await self._remember(public_id, ws)
        await ws.send_json(await self._history_frame(public_id, session["language"]))

    async def _history_frame(self, public_id: str, language: str | None = None) -> dict[str, Any]:
        # The customer's view only: the dispatcher's history never carries internal notes.
        history = await self.ctx.history(self.name, public_id)
        return {
            "type": "history",
            "conversation_id": history.conversation_id if history else None,
            "state": history.state if history else None,
            "language": history.language if history else None,
            # In the conversation's language once there is one, else the browser's.
            "welcome": self.welcome[next((x for x in (history.language if history else None, language)
                                          if x in self.welcome), "de")],
            "extensions": self.extensions,
            "max_upload_bytes": self.max_upload,
            "messages": [
                {
                    "id": m.message_id,
                    "direction": m.direction,
                    "author": m.author,
                    "text": m.text,
                    **({"display": m.display} if m.display else {}),
                    **({"sender_name": m.sender_name} if m.sender_name else {}),
                    **({"sender_avatar": m.sender_avatar} if m.sender_avatar else {}),
                    "buttons": [b.to_dict() for b in m.buttons],
                    "attachments": [a.to_dict() for a in m.attachments],
                    "timestamp": _timestamp(m.created_at),
                }
                # Earlier conversations first: a finished one stays on the customer's page.
                for m in ((*history.earlier, *history.messages) if history else ())
            ],
        }

    async def _work(
        self, ws: web.WebSocketResponse, session: dict[str, Any], queue: asyncio.Queue[dict[str, Any] | None]
    ) -> None:
        while (data := await queue.get()) is not None:
            try:
                await self._message(ws, session, data)
            except Exception:  # noqa: BLE001 - one bad turn must not kill the customer's socket
                # The public id, never the token: logs are read by more people than the chat.
                log.exception("webchat.turn_failed", session=session["id"])
                await self._error(ws, "the message could not be processed; please try again")

    async def _message(self, ws: web.WebSocketResponse, session: dict[str, Any], data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind != "message":
            await self._error(ws, f"unknown frame type {kind!r}"[:200])
            return
        if session["id"] is None:
            await self._error(ws, "say hello before sending messages")
            return
        text, client_id, display = data.get("text"), data.get("client_id"), data.get("display")
        if client_id is not None and (
            not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID or text_problem("client_id", client_id)
        ):
            await self._error(ws, f"field 'client_id' must be a string of 1-{MAX_CLIENT_ID} characters")
            return
        if not isinstance(text, str) or not text.strip():
            await self._error(ws, "field 'text' is missing or empty", client_id)
            return
        if len(text) > self.max_chars:
            await self._error(ws, f"field 'text' is longer than {self.max_chars} characters", client_id)
            return
        if display is not None and not isinstance(display, str):
            await self._error(ws, "field 'display' must be a string", client_id)
            return
        problem = text_problem("text", text) or (text_problem("display", display) if display else None)
        if problem:
            await self._error(ws, problem, client_id)
            return
        metadata: dict[str, Any] = {"display": display[:200]} if display else {}
        callback = data.get("callback")
        if callback is not None:
            # A message left for a callback or an e-mail while waiting (the desk takes it).
            contact = check_contact(callback.get("via"), callback.get("contact")) if isinstance(callback, dict) else None
            if contact is None:
                await self._error(ws, "field 'callback' needs 'via' ('phone' or 'email') and a valid 'contact'",
                                  client_id, code="callback_contact")
                return
            metadata["callback"] = {"via": callback["via"], "contact": contact}
        session_id: str = session["id"]
        now = asyncio.get_running_loop().time()
        if now - session["touched"] > TOUCH_EVERY.total_seconds():
            session["touched"] = now
            await self.sessions.touch(session_id)
        inbound = InboundMessage(
            channel=self.name,
            sender_id=session_id,
            text=text,
            address=ChannelAddress(self.name, session_id),
            provider_message_id=client_id,
            metadata=metadata,
            language_hint=session["language"],
            customer_key=session.get("customer_key"),
            # Only a signed host identity sets the key (_hello_checked): it is verified.
            key_verified=session.get("customer_key") is not None,
        )
        received = datetime.now(UTC)  # before the message is stored: it sorts before the replies
        result = await self.ctx.on_message(inbound)
        if not result.duplicate and result.message_id:
            # The session's other tabs show what was typed here (this tab shows it already).
            mine = {"type": "message", "id": result.message_id, "direction": "in", "author": "customer",
                    "text": text, **({"display": display[:200]} if display else {}),
                    "buttons": [], "attachments": [], "timestamp": received.isoformat()}
            await self._push_local(session_id, mine, skip=ws)
            self.relay.publish(session_id, mine)
        if not ws.closed:
            await ws.send_json(
                {
                    "type": "ack",
                    "client_id": client_id,
                    "message_id": result.message_id,
                    "conversation_id": result.conversation_id,
                    "state": result.state,
                    "duplicate": result.duplicate,
                    "timestamp": received.isoformat(),
                }
            )

    @staticmethod
    async def _error(ws: web.WebSocketResponse, message: str, client_id: Any = None, *, code: str | None = None) -> None:
        if not ws.closed:
            frame: dict[str, Any] = {"type": "error", "error": message}
            if code is not None:
                frame["code"] = code
            if isinstance(client_id, str) and not text_problem("client_id", client_id):
                frame["client_id"] = client_id[:MAX_CLIENT_ID]
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json(frame)
