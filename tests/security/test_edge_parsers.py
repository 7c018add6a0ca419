"""Issue #8 item 11 (provider edge): odd payloads get a precise 400, never a 500.

Each webhook parser is fed what a provider (or anyone holding its secret) could send: lone UTF-16
surrogates, 5,000-deep nesting, NaN, wrong types where python-telegram-bot expects objects,
numbers in non-ASCII digits (int() accepts "١٢٣"; "²".isdigit() is True but int("²") raises),
NUL characters and overlong ids PostgreSQL would refuse. Runs on SQLite and PostgreSQL, because
some of these only fail in PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from resonanz.store.models import Customer
from tests.conftest import BACKENDS
from connectors.fakes.telegram import callback_update, text_update
from tests.security.edge_support import Edge, start_edge, twilio_inbound

DEEP = 5000


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=BACKENDS)
async def edge(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, fake_telegram: Any,
               fake_twilio: Any) -> AsyncIterator[Edge]:
    async for e in start_edge(request.param, tmp_path_factory.mktemp("edge-parsers"), fake_telegram, fake_twilio):
        yield e


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- REST ----------------------------------------------------------------------------------------

REST_CASES = {
    "surrogate-message": (rb'{"sender": "a", "message": "hi \ud800"}', "surrogate"),
    "surrogate-sender": (rb'{"sender": "\udfff", "message": "hi"}', "surrogate"),
    "surrogate-key": (rb'{"sender": "a", "message": "hi", "metadata": {"\ud800": 1}}', "surrogate"),
    "deep-5000": (('{"sender": "a", "message": "hi", "metadata": {"x": ' + _nested(DEEP) + "}}").encode(), "nested deeper"),
    "deep-5000-top": (_nested(DEEP).encode(), "nested deeper"),
    "deep-200": (('{"sender": "a", "message": "hi", "metadata": {"x": ' + _nested(200) + "}}").encode(), "nested deeper"),
    "nan": (b'{"sender": "a", "message": "hi", "metadata": {"x": NaN}}', "NaN"),
    "infinity": (b'{"sender": "a", "message": "hi", "metadata": {"x": -Infinity}}', "Infinity"),
    "nul-in-metadata": (b'{"sender": "a", "message": "hi", "metadata": {"x": "\\u0000"}}', "NUL"),
    "nul-in-message": (b'{"sender": "a", "message": "h\\u0000i"}', "NUL"),
    "message-id-object": (b'{"sender": "a", "message": "hi", "metadata": {"message_id": {"a": 1}}}', "message_id"),
    "message-id-bool": (b'{"sender": "a", "message": "hi", "metadata": {"message_id": true}}', "message_id"),
    "message-id-long": (json.dumps({"sender": "a", "message": "hi", "metadata": {"message_id": "m" * 201}}).encode(),
                        "message_id"),
    "not-utf8": (b'{"sender": "a", "message": "\xff"}', "not UTF-8"),
    "huge-int": (b'{"sender": "a", "message": "hi", "metadata": {"x": 1' + b"0" * 5000 + b"}}", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(REST_CASES))
async def test_rest_webhook_answers_400(edge: Edge, case: str) -> None:
    body, expected = REST_CASES[case]
    status, answer = await edge.send(edge.rest(body))
    assert status == 400, answer
    assert expected in answer["error"]


@pytest.mark.parametrize(("sender", "expected"), [("a\x00b", "NUL"), (" ", "empty"), ("s" * 129, "longer than 128")])
async def test_rest_messages_query_answers_400(edge: Edge, sender: str, expected: str) -> None:
    async with edge.http.get(edge.url("/webhooks/rest/messages"), params={"sender": sender},
                             headers=dict(edge.rest(b"")[2])) as r:
        assert r.status == 400, await r.text()
        assert expected in (await r.json())["error"]


# --- Telegram ------------------------------------------------------------------------------------


def _update(**message: Any) -> dict[str, Any]:
    update = text_update(1_000_001, 4242, "hallo")
    update["message"].update(message)
    return update


TELEGRAM_CASES: dict[str, tuple[Any, str]] = {
    "message-is-a-string": ({"update_id": 5, "message": "x"}, "message"),
    "callback-is-a-list": ({"update_id": 5, "callback_query": [1]}, "callback_query"),
    "update-id-bool": ({"update_id": True, "message": _update()["message"]}, "update_id"),
    "update-id-huge": ({"update_id": 10**30}, "update_id"),
    "update-id-negative": ({"update_id": -1}, "update_id"),
    "text-is-a-number": (_update(text=5), "message.text"),
    "chat-id-is-a-string": (_update(chat={"id": "abc", "type": "private"}), "message.chat.id"),
    "date-overflows": (_update(date=10**20), "message.date"),
    "photo-is-a-string": (_update(photo="x"), "message.photo"),
    "from-is-a-list": (_update(**{"from": [1]}), "message.from"),
    "first-name-too-long": (_update(**{"from": {"id": 4242, "is_bot": False, "first_name": "E" * 201}}), "first_name"),
    "latitude-out-of-range": (_update(location={"latitude": 1000, "longitude": 0}), "latitude"),
    "reply-is-a-string": (_update(reply_to_message="x"), "cannot parse"),
    "entities-are-strings": (_update(entities=["x"]), "cannot parse"),
    "callback-without-from": ({k: v for k, v in callback_update(6, 4242, "d", 1).items()} | {
        "callback_query": {"id": "1", "data": "d"}}, "callback_query.from"),
}


@pytest.mark.parametrize("case", list(TELEGRAM_CASES))
async def test_telegram_webhook_answers_400(edge: Edge, case: str) -> None:
    update, expected = TELEGRAM_CASES[case]
    status, answer = await edge.send(edge.telegram_update(json.dumps(update).encode()))
    assert status == 400, answer
    assert "not a Telegram update" in answer["error"] and expected in answer["error"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [(_nested(DEEP).encode(), "nested deeper"),
     (('{"update_id": 1, "message": {"x": ' + _nested(DEEP) + "}}").encode(), "nested deeper"),
     (b'{"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": "\\ud800"}}',
      "surrogate"),
     (b'{"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 1, "type": "private"}, "text": "a\\u0000"}}',
      "NUL"),
     (b"[]", "not a JSON object"),
     (b"\xff", "not UTF-8")],
    ids=["deep-top", "deep-inside", "surrogate", "nul", "array", "not-utf8"],
)
async def test_telegram_bad_json_answers_400(edge: Edge, body: bytes, expected: str) -> None:
    status, answer = await edge.send(edge.telegram_update(body))
    assert status == 400, answer
    assert expected in answer["error"]


# --- Twilio: WhatsApp and SMS, messages and status callbacks ------------------------------------


def _inbound(edge: Edge, channel: str, **fields: str) -> dict[str, str]:
    return twilio_inbound(edge.twilio, channel, "+4915100000001", "hallo", "SM" + "a" * 32, **fields)


TWILIO_CASES: dict[str, tuple[dict[str, str], str]] = {
    "num-media-arabic-indic": ({"NumMedia": "١"}, "NumMedia"),
    "num-media-superscript": ({"NumMedia": "²"}, "NumMedia"),
    "num-media-word": ({"NumMedia": "one"}, "NumMedia"),
    "num-media-negative": ({"NumMedia": "-1"}, "NumMedia"),
    "num-media-too-many": ({"NumMedia": "11"}, "NumMedia"),
    "media-url-broken": ({"NumMedia": "1", "MediaUrl0": "http://[", "MediaContentType0": "image/png"}, "MediaUrl0"),
    "media-url-bad-port": ({"NumMedia": "1", "MediaUrl0": "http://h:99999/x"}, "MediaUrl0"),
    "media-url-file": ({"NumMedia": "1", "MediaUrl0": "file:///etc/passwd"}, "MediaUrl0"),
    "latitude-nan": ({"Latitude": "nan", "Longitude": "1"}, "Latitude"),
    "latitude-inf": ({"Latitude": "1e400", "Longitude": "1"}, "Latitude"),
    "latitude-arabic-indic": ({"Latitude": "١٢", "Longitude": "1"}, "Latitude"),
    "latitude-out-of-range": ({"Latitude": "95", "Longitude": "1"}, "Latitude"),
    "longitude-alone": ({"Longitude": "1"}, "Latitude"),
    "nul-in-body": ({"Body": "a\x00b"}, "NUL"),
    "surrogate-free-but-long-from": ({"From": "+49" + "1" * 150}, "From is longer"),
    "long-message-sid": ({"MessageSid": "SM" + "1" * 150}, "MessageSid is longer"),
}


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
@pytest.mark.parametrize("case", list(TWILIO_CASES))
async def test_twilio_webhook_answers_400(edge: Edge, channel: str, case: str) -> None:
    fields, expected = TWILIO_CASES[case]
    params = _inbound(edge, channel, **fields)
    status, answer = await edge.send(edge.twilio_form(channel, "webhook", params))
    assert status == 400, answer
    assert expected in answer["error"]


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
@pytest.mark.parametrize("body", [b"From=%FF&MessageSid=SM1", b"From=%ED%A0%80&MessageSid=SM1"], ids=["latin1", "cesu-surrogate"])
async def test_twilio_form_that_is_not_utf8_answers_400(edge: Edge, channel: str, body: bytes) -> None:
    for route in ("webhook", "status"):
        status, answer = await edge.send(edge.twilio_raw_form(channel, route, body))
        assert status == 400, answer
        assert "not UTF-8" in answer["error"]


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
@pytest.mark.parametrize("code", ["١٢٣", "²", "12a", "1234567", " 1"])
async def test_twilio_status_with_a_strange_error_code_answers_400(edge: Edge, channel: str, code: str) -> None:
    params = edge.twilio.status_params("SM" + "b" * 32, "failed", error_code=code, channel=channel)
    status, answer = await edge.send(edge.twilio_form(channel, "status", params))
    assert status == 400, answer
    assert "ErrorCode" in answer["error"]


@pytest.mark.parametrize("channel", ["whatsapp", "sms"])
async def test_twilio_good_values_still_pass(edge: Edge, channel: str) -> None:
    params = edge.twilio.status_params("SM" + "c" * 32, "undelivered", error_code="30008", channel=channel)
    status, answer = await edge.send(edge.twilio_form(channel, "status", params))
    assert status == 200 and answer["ok"] is True
    phone = "+4915100000" + ("777" if channel == "sms" else "778")
    params = twilio_inbound(edge.twilio, channel, phone, "", f"SMgood{channel}{'0' * 24}",
                            Latitude="52.520008", Longitude="-13.404954", ProfileName="P" * 500, NumMedia="0")
    status, answer = await edge.send(edge.twilio_form(channel, "webhook", params))
    assert status == 200, answer
    async with edge.db.session() as s:
        names = (await s.scalars(select(Customer.name).where(Customer.name.like("PPP%")))).all()
    assert names and all(len(n) <= 200 for n in names)
