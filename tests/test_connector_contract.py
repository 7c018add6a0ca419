"""Every connector against the contract suite (connectors/testing.py), each with its fake provider
driven by the real client library. The ACME connector is the code block of docs/connectors.md."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import types
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from connectors.base import ChannelAddress
from connectors.rest import RestConnector
from connectors.telegram import TelegramConnector
from connectors.testing import ConnectorContract, Delivered, Harness, ProviderRequest, RecordingCore, context
from connectors.twilio import SmsConnector, WhatsAppConnector
from resonanz.media import MediaStore
from resonanz.settings import Settings
from connectors.fakes.server import LocalServer
from connectors.fakes.telegram import FakeTelegram, text_update
from connectors.fakes.twilio import FakeTwilio

DOCS = Path(__file__).resolve().parent.parent / "docs" / "connectors.md"
PUBLIC = "https://gateway.example"  # what Twilio sees in front of a reverse proxy


def _settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, public_url=PUBLIC)


def load_docs_example() -> types.ModuleType:
    """The first Python block of docs/connectors.md, as a module."""
    block = re.search(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert block is not None
    module = types.ModuleType("acme_from_docs")
    exec(compile(block.group(1), str(DOCS), "exec"), module.__dict__)  # noqa: S102 - our own docs
    return module


# --- Telegram ----------------------------------------------------------------------------------


class TelegramHarness(Harness):
    native_buttons = True
    secret = "contract-secret_1"

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.core = RecordingCore()
        self.fake = FakeTelegram()

    async def __aenter__(self) -> TelegramHarness:
        await self.fake.start()
        self.http = aiohttp.ClientSession()
        config = {"token": self.fake.token, "secret": self.secret, "api_base_url": self.fake.base_url,
                  "file_base_url": self.fake.base_file_url}
        self.connector = TelegramConnector(context(_settings(self.tmp_path), self.http, self.core, config,
                                                   MediaStore(self.tmp_path / "media", PUBLIC)))
        await self.connector.startup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connector.shutdown()
        await self.http.close()
        await self.fake.close()

    @staticmethod
    def chat(sender: str) -> int:
        return int(hashlib.sha256(sender.encode()).hexdigest()[:8], 16)

    def inbound(self, text: str, *, message_id: str, sender: str) -> ProviderRequest:
        update_id = int(hashlib.sha256(message_id.encode()).hexdigest()[:7], 16)
        body = json.dumps(text_update(update_id, self.chat(sender), text)).encode()
        return ProviderRequest("/webhooks/telegram/webhook", body,
                               {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": self.secret})

    def forged(self, request: ProviderRequest) -> ProviderRequest:
        return ProviderRequest(request.path, request.body, {**request.headers, "X-Telegram-Bot-Api-Secret-Token": "guess"})

    def unsigned(self, request: ProviderRequest) -> ProviderRequest:
        headers = {k: v for k, v in request.headers.items() if k != "X-Telegram-Bot-Api-Secret-Token"}
        return ProviderRequest(request.path, request.body, headers)

    def address(self, sender: str) -> ChannelAddress:
        return ChannelAddress("telegram", str(self.chat(sender)))

    async def delivered(self) -> list[Delivered]:
        out = []
        for call in self.fake.sent:
            markup = call.params.get("reply_markup") or {}
            titles = tuple(b["text"] for row in markup.get("inline_keyboard", []) for b in row)
            out.append(Delivered(call.params.get("text") or call.params.get("caption") or "", titles))
        return out

    def fail_provider(self, status: int, *, retry_after: int | None = None) -> None:
        self.fake.fail_next("sendMessage", status, retry_after=retry_after)


# --- Twilio (WhatsApp and SMS) -------------------------------------------------------------------


class TwilioHarness(Harness):
    def __init__(self, tmp_path: Path, cls: type) -> None:
        self.tmp_path = tmp_path
        self.cls = cls
        self.core = RecordingCore()
        self.fake = FakeTwilio()

    async def __aenter__(self) -> TwilioHarness:
        await self.fake.start()
        self.http = aiohttp.ClientSession()
        sender = "whatsapp:+4930123456" if self.cls is WhatsAppConnector else "+4930123456"
        config = {"account_sid": self.fake.account_sid, "auth_token": self.fake.auth_token, "from": sender,
                  "api_base_url": self.fake.base_url}
        self.connector = self.cls(context(_settings(self.tmp_path), self.http, self.core, config,
                                          MediaStore(self.tmp_path / "media", PUBLIC)))
        if self.cls is WhatsAppConnector:
            self.connector._in_window = _always_in_window  # the window rule has its own e2e test
        await self.connector.startup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.connector.shutdown()
        await self.http.close()
        await self.fake.close()

    @property
    def path(self) -> str:
        return f"/webhooks/{self.connector.name}/webhook"

    @staticmethod
    def phone(sender: str) -> str:
        return "+49151" + str(int(hashlib.sha256(sender.encode()).hexdigest()[:6], 16)).zfill(8)[:8]

    def inbound(self, text: str, *, message_id: str, sender: str) -> ProviderRequest:
        sid = "SM" + hashlib.md5(message_id.encode()).hexdigest()  # noqa: S324 - a test id
        make = self.fake.whatsapp_params if self.cls is WhatsAppConnector else self.fake.sms_params
        params = make(self.phone(sender), text, message_sid=sid)
        headers, body = self.fake.signed_webhook(PUBLIC + self.path, params)
        return ProviderRequest(self.path, body.encode(), headers)

    def forged(self, request: ProviderRequest) -> ProviderRequest:
        return ProviderRequest(request.path, request.body, {**request.headers, "X-Twilio-Signature": "AAAA" * 7})

    def unsigned(self, request: ProviderRequest) -> ProviderRequest:
        return ProviderRequest(request.path, request.body,
                               {k: v for k, v in request.headers.items() if k != "X-Twilio-Signature"})

    def address(self, sender: str) -> ChannelAddress:
        return ChannelAddress(self.connector.name, self.phone(sender))

    async def delivered(self) -> list[Delivered]:
        return [Delivered(m.get("Body", "")) for m in self.fake.messages]

    def fail_provider(self, status: int, *, retry_after: int | None = None) -> None:
        self.fake.fail_next(status, retry_after=retry_after)


async def _always_in_window(address: ChannelAddress) -> bool:
    return True


# --- REST (pull, unsigned) -----------------------------------------------------------------------


class RestHarness(Harness):
    signed = False
    pushes = False

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.core = RecordingCore()

    async def __aenter__(self) -> RestHarness:
        self.http = aiohttp.ClientSession()
        self.connector = RestConnector(context(_settings(self.tmp_path), self.http, self.core, {}))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()

    def inbound(self, text: str, *, message_id: str, sender: str) -> ProviderRequest:
        body = json.dumps({"sender": sender, "message": text, "metadata": {"message_id": message_id}}).encode()
        return ProviderRequest("/webhooks/rest/webhook", body, {"Content-Type": "application/json"})

    def address(self, sender: str) -> ChannelAddress:
        return ChannelAddress("rest", sender)


# --- ACME, the example from docs/connectors.md ---------------------------------------------------


class FakeAcme(LocalServer):
    """ACME's message API: records accepted messages; can fail the next request."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.failures: list[tuple[int, int | None]] = []

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/messages", self.create)
        return app

    async def create(self, request: web.Request) -> web.Response:
        if self.failures:
            status, retry_after = self.failures.pop(0)
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            return web.json_response({"error": "nope"}, status=status, headers=headers)
        self.messages.append(await request.json())
        return web.json_response({"id": f"acme-{len(self.messages)}"}, status=201)


class AcmeHarness(Harness):
    secret = "acme-secret"

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.core = RecordingCore()
        self.fake = FakeAcme()

    async def __aenter__(self) -> AcmeHarness:
        api_url = (await self.fake.start()).origin
        self.http = aiohttp.ClientSession()
        module = load_docs_example()
        self.connector = module.AcmeChatConnector(
            context(_settings(self.tmp_path), self.http, self.core, {"secret": self.secret, "api_url": api_url})
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        await self.fake.close()

    def _sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()

    def inbound(self, text: str, *, message_id: str, sender: str) -> ProviderRequest:
        body = json.dumps({"id": message_id, "from": sender, "text": text}).encode()
        return ProviderRequest("/webhooks/acme", body, {"X-Acme-Signature": self._sign(body)})

    def forged(self, request: ProviderRequest) -> ProviderRequest:
        return ProviderRequest(request.path, request.body, {"X-Acme-Signature": self._sign(b"other")})

    def unsigned(self, request: ProviderRequest) -> ProviderRequest:
        return ProviderRequest(request.path, request.body, {})

    def address(self, sender: str) -> ChannelAddress:
        return ChannelAddress("acme", sender)

    async def delivered(self) -> list[Delivered]:
        return [Delivered(m["text"]) for m in self.fake.messages]

    def fail_provider(self, status: int, *, retry_after: int | None = None) -> None:
        self.fake.failures.append((status, retry_after))


HARNESSES = {
    "telegram": TelegramHarness,
    "whatsapp": lambda tmp: TwilioHarness(tmp, WhatsAppConnector),
    "sms": lambda tmp: TwilioHarness(tmp, SmsConnector),
    "rest": RestHarness,
    "acme-docs-example": AcmeHarness,
}


class TestEveryConnector(ConnectorContract):
    @pytest.fixture(params=sorted(HARNESSES))
    async def harness(self, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
        async with HARNESSES[request.param](tmp_path) as h:
            yield h


def test_the_docs_example_is_a_registered_kind_of_connector() -> None:
    from connectors.base import Connector

    module = load_docs_example()
    assert issubclass(module.AcmeChatConnector, Connector)
    assert module.AcmeChatConnector.name == "acme"
