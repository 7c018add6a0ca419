"""A real gateway for the provider/REST edge tests: REST (with a token), Telegram, WhatsApp and SMS
against their local fakes, on a real aiohttp server (port 0) and a real database.

The engine URL is a closed port, so a valid message takes the "engine unavailable" path (an
apology, the conversation queued) - these tests are about what the edge accepts, not the bot.
Helpers build correctly signed provider requests, so a test reaches the parser behind the
signature check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from tests.conftest import free_port, make_database_url, migrated_database

PUBLIC = "https://gateway.example"  # the URL providers call, as they see it (signatures cover it)
REST_TOKEN = "rest-token-0123456789abcdef"
TELEGRAM_SECRET = "edge-webhook-secret_01"
TWILIO_CHANNELS = ("whatsapp", "sms")


@dataclass
class Edge:
    server: TestServer
    app: web.Application
    db: Database
    http: aiohttp.ClientSession
    telegram: Any
    twilio: Any

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    # --- request builders (method, path, body, headers) ----------------------------------------

    @staticmethod
    def rest(body: bytes, *, token: str | None = REST_TOKEN) -> tuple[str, bytes, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return "/webhooks/rest/webhook", body, headers

    @staticmethod
    def telegram_update(body: bytes) -> tuple[str, bytes, dict[str, str]]:
        return "/webhooks/telegram/webhook", body, {"Content-Type": "application/json",
                                                     "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}

    def twilio_form(self, channel: str, route: str, params: Mapping[str, str]) -> tuple[str, bytes, dict[str, str]]:
        """A form signed as Twilio signs it (route: "webhook" or "status")."""
        path = f"/webhooks/{channel}/{route}"
        headers, body = self.twilio.signed_webhook(PUBLIC + path, params)
        return path, body.encode(), headers

    def twilio_raw_form(self, channel: str, route: str, body: bytes) -> tuple[str, bytes, dict[str, str]]:
        """Any form body (even one parse_qsl would reject) with a signature over what it parses to
        leniently, so that the strict parser behind the signature is what answers."""
        from urllib.parse import parse_qsl

        params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        path = f"/webhooks/{channel}/{route}"
        headers, _ = self.twilio.signed_webhook(PUBLIC + path, params)
        return path, body, headers

    async def send(self, request: tuple[str, bytes, dict[str, str]], method: str = "POST") -> tuple[int, Any]:
        path, body, headers = request
        async with self.http.request(method, self.url(path), data=body, headers=headers) as r:
            return r.status, await _body(r)


async def _body(r: aiohttp.ClientResponse) -> Any:
    text = await r.text()
    if r.content_type == "application/json":
        return json.loads(text)
    return text


def twilio_inbound(twilio: Any, channel: str, phone: str, text: str, sid: str, **extra: str) -> dict[str, str]:
    make = twilio.whatsapp_params if channel == "whatsapp" else twilio.sms_params
    return {**make(phone, text, message_sid=sid), **extra}


def edge_settings(db_url: str, telegram: Any, twilio: Any, **overrides: Any) -> Settings:
    tw = {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "api_base_url": twilio.base_url,
          "public_url": PUBLIC}
    values: dict[str, Any] = {
        "DATABASE_URL": db_url,
        "engine_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "engine_startup_wait": 0,
        "engine_timeout": 1,
        "public_url": PUBLIC,
        "connectors": ("rest", "telegram", "whatsapp", "sms"),
        "connector_options": {
            "rest": {"token": REST_TOKEN},
            "telegram": {"token": telegram.token, "secret": TELEGRAM_SECRET, "api_base_url": telegram.base_url,
                         "file_base_url": telegram.base_file_url},
            "whatsapp": {**tw, "from": "whatsapp:+4930123456"},
            "sms": {**tw, "from": "+4930123456"},
        },
        "outbox_backoff_base": 0.05,
        "outbox_backoff_max": 0.5,
        "outbox_max_attempts": 2,
    }
    values.update(overrides)
    return Settings(**values)


async def start_edge(backend: str, tmp_dir: Path, telegram: Any, twilio: Any, **overrides: Any) -> AsyncIterator[Edge]:
    url, drop = await make_database_url(backend, tmp_dir)
    db = await migrated_database(url)
    app = await create_app(edge_settings(url, telegram, twilio, var_dir=tmp_dir, **overrides), db=db)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield Edge(server, app, db, http, telegram, twilio)
    finally:
        await server.close()
        await db.dispose()
        await drop()


# --- a client that sends a body slowly, in small pieces --------------------------------------------


async def send_slowly(url: str, path: str, body: bytes, headers: Mapping[str, str], *, piece: int = 512,
                      chunked: bool = False) -> tuple[int, bytes]:
    """POST over a raw TCP connection, writing the body `piece` bytes at a time and yielding to the
    event loop between pieces (the server, in the same loop, reads each as it arrives). With
    `chunked`, the body goes as chunked transfer encoding and has no Content-Length."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        for i in range(0, len(body), piece):
            chunk = body[i:i + piece]
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            await writer.drain()
            await asyncio.sleep(0)  # yield, so the server sees this piece on its own
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        response = await reader.read()
    except ConnectionResetError:
        # The server may answer (413) and close before the client has finished sending.
        response = await reader.read() if not reader.at_eof() else b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), response[:200]
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def form(params: Mapping[str, str]) -> bytes:
    return urlencode(params).encode()
