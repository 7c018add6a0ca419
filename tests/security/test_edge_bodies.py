"""Issue #8 item 5: every webhook reads its WHOLE body, however it arrives.

A provider's body may arrive in many TCP segments (a slow link, `curl --limit-rate`) or with
chunked transfer encoding and no Content-Length. Each webhook - REST, Telegram, WhatsApp and SMS
messages, and the Twilio status callbacks - must accept a correctly signed ~30 KB body sent in
small pieces, and answer a JSON 413 to a body over its limit, declared or not.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from connectors.rest import MAX_BODY
from connectors.telegram import MAX_UPDATE_BYTES
from connectors.twilio import MAX_FORM_BYTES
from resonanz.store.models import Message
from connectors.fakes.telegram import text_update
from tests.security.edge_support import Edge, send_slowly, start_edge, twilio_inbound

PAD = 30 * 1024  # with the payload itself, each body is a little over 30 KB


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def edge(tmp_path_factory: pytest.TempPathFactory, fake_telegram: Any, fake_twilio: Any) -> AsyncIterator[Edge]:
    async for e in start_edge("sqlite", tmp_path_factory.mktemp("edge-bodies"), fake_telegram, fake_twilio):
        yield e


def _rest(edge: Edge, n: int, pad: int) -> tuple[str, bytes, dict[str, str]]:
    body = {"sender": f"slow-rest-{n}", "message": f"Zählerstand {n}", "metadata": {"pad": "x" * pad}}
    return edge.rest(json.dumps(body).encode())


def _telegram(edge: Edge, n: int, pad: int) -> tuple[str, bytes, dict[str, str]]:
    update = text_update(7_000_000 + n, 900_000 + n, f"Zählerstand {n}")
    update["message"]["x_padding"] = "x" * pad  # unknown fields are passed over, as Telegram adds new ones
    return edge.telegram_update(json.dumps(update).encode())


def _twilio_message(channel: str) -> Callable[[Edge, int, int], tuple[str, bytes, dict[str, str]]]:
    def build(edge: Edge, n: int, pad: int) -> tuple[str, bytes, dict[str, str]]:
        params = twilio_inbound(edge.twilio, channel, f"+4915100{n:05d}", f"Zählerstand {n}",
                                f"SMslow{channel}{n:026d}", Padding="x" * pad)
        return edge.twilio_form(channel, "webhook", params)
    return build


def _twilio_status(channel: str) -> Callable[[Edge, int, int], tuple[str, bytes, dict[str, str]]]:
    def build(edge: Edge, n: int, pad: int) -> tuple[str, bytes, dict[str, str]]:
        params = edge.twilio.status_params(f"SMstatus{channel}{n:024d}", "delivered", channel=channel)
        params["Padding"] = "x" * pad
        return edge.twilio_form(channel, "status", params)
    return build


ROUTES: dict[str, tuple[Callable[[Edge, int, int], tuple[str, bytes, dict[str, str]]], int]] = {
    "rest": (_rest, MAX_BODY),
    "telegram": (_telegram, MAX_UPDATE_BYTES),
    "whatsapp": (_twilio_message("whatsapp"), MAX_FORM_BYTES),
    "sms": (_twilio_message("sms"), MAX_FORM_BYTES),
    "whatsapp-status": (_twilio_status("whatsapp"), MAX_FORM_BYTES),
    "sms-status": (_twilio_status("sms"), MAX_FORM_BYTES),
}
_counter = iter(range(1, 10**6))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_30kb_body_sent_slowly_is_accepted(edge: Edge, route: str, chunked: bool) -> None:
    build, _limit = ROUTES[route]
    n = next(_counter)
    path, body, headers = build(edge, n, PAD)
    assert 30 * 1024 < len(body) < 40 * 1024
    status, answer = await send_slowly(edge.url("/"), path, body, headers, piece=256, chunked=chunked)
    assert status == 200, answer[:300]
    if not route.endswith("status"):
        # The message itself was stored, not just acknowledged.
        async with edge.db.session() as s:
            texts = (await s.scalars(select(Message.text).where(Message.direction == "in"))).all()
        assert f"Zählerstand {n}" in texts


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("route", list(ROUTES))
async def test_a_body_over_the_limit_gets_a_json_413(edge: Edge, route: str, chunked: bool) -> None:
    build, limit = ROUTES[route]
    n = next(_counter)
    path, small, _ = build(edge, n, 0)
    path, body, headers = build(edge, n, limit - len(small) + 1)
    assert len(body) > limit
    status, answer = await send_slowly(edge.url("/"), path, body, headers, piece=4096, chunked=chunked)
    assert status == 413
    assert f"larger than {limit} bytes" in json.loads(answer)["error"]


async def test_read_body_reads_every_segment(tmp_path: Path) -> None:
    """The helper itself, on a plain aiohttp app: a body in 1-byte pieces is read whole."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from connectors.webhook import RequestRejected, read_body

    async def echo(request: web.Request) -> web.Response:
        try:
            return web.Response(body=await read_body(request, 100))
        except RequestRejected as exc:
            return exc.response()

    app = web.Application()
    app.router.add_post("/echo", echo)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        status, answer = await send_slowly(str(server.make_url("/")), "/echo", b"0123456789" * 10, {}, piece=1)
        assert (status, answer) == (200, b"0123456789" * 10)
        status, answer = await send_slowly(str(server.make_url("/")), "/echo", b"x" * 101, {}, piece=7, chunked=True)
        assert status == 413 and json.loads(answer) == {"error": "request body is larger than 100 bytes"}
    finally:
        await server.close()


async def test_twilio_media_arriving_slowly_is_stored_whole(edge: Edge) -> None:
    """The same defect on the way in from the provider: a media download read with one
    `read(n)` kept only its first segment."""
    import asyncio
    import os

    from aiohttp import web
    from aiohttp.test_utils import TestServer

    picture = os.urandom(200 * 1024)

    async def slow_media(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        for i in range(0, len(picture), 1024):
            await response.write(picture[i:i + 1024])
            await asyncio.sleep(0)  # yield, so the client sees the pieces one by one
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/media/pic", slow_media)
    media_host = TestServer(app, host="127.0.0.1", port=0)
    await media_host.start_server()
    try:
        sid = "MMslowmedia" + "0" * 23
        params = twilio_inbound(edge.twilio, "whatsapp", "+4915177700001", "", sid, NumMedia="1",
                                MediaUrl0=str(media_host.make_url("/media/pic")), MediaContentType0="image/png")
        status, answer = await edge.send(edge.twilio_form("whatsapp", "webhook", params))
        assert status == 200, answer
    finally:
        await media_host.close()
    async with edge.db.session() as s:
        [attachment] = await s.scalar(select(Message.attachments).where(Message.provider_message_id == sid))
    name = attachment["url"].rpartition("/media/")[2]
    assert name, attachment
    from resonanz.keys import SETTINGS

    # Customers' files are served to logged-in agents only: compare what was stored.
    stored = edge.app[SETTINGS].var_dir / "media" / name
    assert stored.read_bytes() == picture
