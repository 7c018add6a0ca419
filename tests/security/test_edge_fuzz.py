"""Issue #8 "done when": a hypothesis fuzz of every webhook parser finds no 5xx.

Each webhook of the provider edge - REST webhook and messages, Telegram webhook, WhatsApp and SMS
webhooks and their status callbacks - gets arbitrary payloads on a real running gateway (aiohttp,
port 0, SQLite and PostgreSQL), correctly signed where the route requires a signature so that the
parser behind it is reached: wrong types, deep nesting, lone surrogates, NaN, NUL characters,
non-ASCII digits. Every answer must be below 500; every 4xx must be a JSON `{"error": ...}`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import BACKENDS
from connectors.fakes.telegram import callback_update, text_update
from tests.security.edge_support import Edge, start_edge, twilio_inbound

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
DEEP = "__deep__"  # a string placeholder replaced by deeply nested JSON text after dumping


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=BACKENDS)
async def edge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_telegram: Any,
               fake_twilio: Any) -> AsyncIterator[Edge]:
    async for e in start_edge(request.param, tmp_path_factory.mktemp("edge-fuzz"), fake_telegram, fake_twilio):
        yield e


# --- strategies ------------------------------------------------------------------------------------

odd_chars = st.sampled_from(["\ud800", "\udfff", "\x00", "١٢٣", "²", "\u202e", "𝟘", "\ufeff", "\n", "ä"])
strings = st.one_of(st.text(max_size=12), st.lists(odd_chars | st.text(max_size=3), max_size=4).map("".join),
                    st.just(DEEP))
numbers = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
                    st.sampled_from([2**63, -(2**63) - 1, 10**20]))
json_values = st.recursive(
    st.none() | st.booleans() | numbers | strings,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(strings, children, max_size=3),
    max_leaves=10,
)
depths = st.sampled_from([2, 63, 64, 65, 200, 999, 1001, 5000])


def render(value: Any, depth: int) -> bytes:
    """JSON text (NaN and lone surrogates as Python's json writes them), with every placeholder
    replaced by `depth`-deep nesting."""
    text = json.dumps(value, allow_nan=True)
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth).encode()


def assert_no_server_error(status: int, answer: Any) -> None:
    assert status < 500, answer
    if 400 <= status < 500:
        assert isinstance(answer, dict) and isinstance(answer.get("error"), str) and answer["error"], answer


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = document
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value
    return document


# --- REST ------------------------------------------------------------------------------------------

rest_bodies = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["sender", "message", "metadata"]), json_values, max_size=3),
    st.fixed_dictionaries({"sender": strings, "message": strings,
                           "metadata": st.dictionaries(st.sampled_from(["message_id", "x", DEEP]), json_values, max_size=2)}),
)


@FUZZ
@given(body=rest_bodies, depth=depths)
async def test_fuzz_rest_webhook(edge: Edge, body: Any, depth: int) -> None:
    assert_no_server_error(*await edge.send(edge.rest(render(body, depth))))


@FUZZ
@given(raw=st.binary(max_size=200))
async def test_fuzz_rest_webhook_bytes(edge: Edge, raw: bytes) -> None:
    assert_no_server_error(*await edge.send(edge.rest(raw)))


@FUZZ
@given(sender=st.text(max_size=140) | st.lists(odd_chars, max_size=4).map("".join))
async def test_fuzz_rest_messages(edge: Edge, sender: str) -> None:
    async with edge.http.get(edge.url("/webhooks/rest/messages"), params={"sender": sender},
                             headers=edge.rest(b"")[2]) as r:
        answer = await r.json() if r.content_type == "application/json" else await r.text()
        assert_no_server_error(r.status, answer)


# --- Telegram --------------------------------------------------------------------------------------

TELEGRAM_PATHS = [
    ("update_id",), ("message",), ("message", "text"), ("message", "chat"), ("message", "chat", "id"),
    ("message", "from"), ("message", "from", "first_name"), ("message", "from", "language_code"), ("message", "date"),
    ("message", "photo"), ("message", "document"), ("message", "location"), ("message", "location", "latitude"),
    ("message", "entities"), ("message", "reply_to_message"), ("message", "caption"), ("message", "message_id"),
    ("callback_query",), ("edited_message",), ("message", "sticker"), ("message", "contact"),
]


@st.composite
def telegram_updates(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(min_value=0, max_value=10**6))
    base = draw(st.sampled_from(["text", "callback", "photo"]))
    if base == "callback":
        update = callback_update(n, 5_000 + n % 7, draw(st.text(max_size=10)) or "x", 1)
        paths = [("callback_query", "data"), ("callback_query", "from"), ("callback_query", "message"),
                 ("callback_query", "message", "chat", "id"), ("callback_query", "id")]
    else:
        update = text_update(n, 5_000 + n % 7, draw(st.text(min_size=1, max_size=20)))
        if base == "photo":
            update["message"]["photo"] = [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]
        paths = []
    for path in draw(st.lists(st.sampled_from(TELEGRAM_PATHS + paths), max_size=3)):
        _set(update, path, draw(json_values))
    return update


@FUZZ
@given(update=telegram_updates(), depth=depths)
async def test_fuzz_telegram_webhook(edge: Edge, update: dict[str, Any], depth: int) -> None:
    assert_no_server_error(*await edge.send(edge.telegram_update(render(update, depth))))


@FUZZ
@given(body=json_values, depth=depths)
async def test_fuzz_telegram_any_json(edge: Edge, body: Any, depth: int) -> None:
    assert_no_server_error(*await edge.send(edge.telegram_update(render(body, depth))))


# --- Twilio: WhatsApp and SMS ----------------------------------------------------------------------

# Form values cannot carry lone surrogates (they are not UTF-8); everything else can.
form_text = st.one_of(
    st.text(max_size=12),
    st.lists(st.sampled_from(["\x00", "١٢٣", "²", "٫", "-", "+", ".", "e", "nan", "inf", "9" * 30, "1e400", " ", "ä"])
             | st.text(alphabet="0123456789", max_size=4), max_size=4).map("".join),
)
# Media URLs from a set that never leaves this machine: the fetch would otherwise go anywhere.
media_urls = st.sampled_from(["", "http://127.0.0.1:1/media", "http://[", "http://h:99999/x", "file:///etc/passwd",
                              "ftp://127.0.0.1/x", "//127.0.0.1/x"]) | st.text(alphabet="abc/.%", max_size=10)
TWILIO_FIELDS = ["From", "Body", "MessageSid", "NumMedia", "MediaContentType0", "Latitude", "Longitude", "Address",
                 "Label", "ProfileName", "WaId", "To", "ErrorCode", "MessageStatus", "SmsStatus", "NumSegments"]


@st.composite
def twilio_forms(draw: st.DrawFn, channel: str, route: str, twilio: Any) -> dict[str, str]:
    n = draw(st.integers(min_value=0, max_value=10**6))
    if route == "webhook":
        params = twilio_inbound(twilio, channel, f"+49151{n:08d}", draw(st.text(max_size=20)), f"SMfuzz{n:026d}")
    else:
        params = twilio.status_params(f"SMfuzz{n:026d}", draw(st.sampled_from(["failed", "delivered", "read", "x"])),
                                      channel=channel)
    changes = draw(st.dictionaries(st.sampled_from(TWILIO_FIELDS) | st.text(max_size=5), form_text, max_size=4))
    params.update(changes)
    if draw(st.booleans()):
        params["NumMedia"] = draw(st.sampled_from(["1", "2"]))
        params["MediaUrl0"] = draw(media_urls)
    return params


async def _fuzz_twilio(edge: Edge, channel: str, route: str, data: st.DataObject) -> None:
    params = data.draw(twilio_forms(channel, route, edge.twilio))
    assert_no_server_error(*await edge.send(edge.twilio_form(channel, route, params)))


@FUZZ
@given(data=st.data())
async def test_fuzz_whatsapp_webhook(edge: Edge, data: st.DataObject) -> None:
    await _fuzz_twilio(edge, "whatsapp", "webhook", data)


@FUZZ
@given(data=st.data())
async def test_fuzz_sms_webhook(edge: Edge, data: st.DataObject) -> None:
    await _fuzz_twilio(edge, "sms", "webhook", data)


@FUZZ
@given(data=st.data())
async def test_fuzz_whatsapp_status(edge: Edge, data: st.DataObject) -> None:
    await _fuzz_twilio(edge, "whatsapp", "status", data)


@FUZZ
@given(data=st.data())
async def test_fuzz_sms_status(edge: Edge, data: st.DataObject) -> None:
    await _fuzz_twilio(edge, "sms", "status", data)


@FUZZ
@given(raw=st.binary(max_size=200), channel=st.sampled_from(["whatsapp", "sms"]),
       route=st.sampled_from(["webhook", "status"]))
async def test_fuzz_twilio_raw_form(edge: Edge, raw: bytes, channel: str, route: str) -> None:
    """Bytes no form encoder would produce, signed over their lenient reading."""
    assert_no_server_error(*await edge.send(edge.twilio_raw_form(channel, route, raw)))
