"""Any frame a client can send gets an answer, never an exception or a dead socket: 5,000-deep
nested JSON, lone UTF-16 surrogates, NUL characters, wrong types - and a hypothesis fuzz of the
frame parser against a running gateway (SQLite and PostgreSQL) that the socket stays usable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resonanz.app import create_app
from resonanz.settings import Settings
from resonanz.store import Database
from tests.conftest import free_port
from tests.support.webchat_client import connect, open_session, until_ack

NOT_LIMITED = {"rate_limit_socket": "100000 per minute", "rate_limit_ip": "100000 per minute"}


@pytest_asyncio.fixture(loop_scope="session")
async def client(database: Database, tmp_path) -> AsyncIterator[TestClient]:  # noqa: ANN001
    settings = Settings(DATABASE_URL=database.url, engine_url=f"http://127.0.0.1:{free_port()}", engine_startup_wait=0,
                        connectors=("webchat",), var_dir=tmp_path, connector_options={"webchat": NOT_LIMITED})
    app = await create_app(settings, db=database)
    async with TestClient(TestServer(app)) as c:
        yield c


async def _still_usable(ws: aiohttp.ClientWebSocketResponse, n: int) -> None:
    await ws.send_json({"type": "message", "text": f"noch da {n}", "client_id": f"alive-{n}"})
    assert (await until_ack(ws))[-1]["client_id"] == f"alive-{n}"


async def test_deeply_nested_frames_get_an_error(client: TestClient) -> None:
    async with connect(client) as ws:
        for raw in ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000):
            await ws.send_str(raw)  # before hello
            assert await ws.receive_json(timeout=10) == {"type": "error", "error": "frame is nested too deeply"}
        await open_session(ws)
        nested = '{"type": "message", "client_id": "deep", "text": ' + "[" * 5000 + "]" * 5000 + "}"
        await ws.send_str(nested)
        assert (await ws.receive_json(timeout=10))["error"] == "frame is nested too deeply"
        await _still_usable(ws, 1)


async def test_lone_surrogates_nul_and_wrong_types_get_precise_errors(client: TestClient) -> None:
    async with connect(client) as ws:
        await open_session(ws)
        cases: list[tuple[str, str]] = [
            ('{"type": "message", "text": "hallo \\ud800", "client_id": "s1"}', "field 'text' is not valid Unicode (lone surrogate)"),
            ('{"type": "message", "text": "hallo", "display": "\\udfff", "client_id": "s2"}', "field 'display' is not valid Unicode (lone surrogate)"),
            ('{"type": "message", "text": "hallo", "client_id": "\\ud800"}', "field 'client_id' must be a string of 1-64 characters"),
            ('{"type": "message", "text": "a\\u0000b", "client_id": "n1"}', "field 'text' must not contain NUL characters"),
            ('{"type": "message", "text": {"x": 1}}', "field 'text' is missing or empty"),
            ('{"type": "message", "text": ["x"]}', "field 'text' is missing or empty"),
            ('{"type": "message", "text": "x", "client_id": {"a": 1}}', "field 'client_id' must be a string of 1-64 characters"),
            ('{"type": ["message"]}', "unknown frame type ['message']"),
            ('{"type": null}', "unknown frame type None"),
            ("null", "frame must be a JSON object"),
            ("[1, 2]", "frame must be a JSON object"),
            ('"\\ud800"', "frame must be a JSON object"),
            ("9" * 5000, "frame is not valid JSON"),
        ]
        for raw, error in cases:
            await ws.send_str(raw)
            got = await ws.receive_json(timeout=10)
            assert got["type"] == "error" and got["error"] == error, (raw[:60], got)
        # A hello with wrong types: the language is ignored, a token that is not a string refused.
        await ws.send_json({"type": "hello", "language": ["de"]})
        assert (await ws.receive_json(timeout=10))["type"] == "session"
        assert (await ws.receive_json(timeout=10))["type"] == "history"
        await _still_usable(ws, 2)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters() | st.sampled_from(["\ud800", "\udfff", "\x00"]), max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
objects = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "hello", "shout"]) | json_values},
    optional={k: json_values for k in ("text", "client_id", "display", "token", "language")},
)
raw_frames = (
    objects.map(json.dumps)  # ensure_ascii: lone surrogates travel as \\udXXX escapes
    | st.text(max_size=200)
    | st.integers(min_value=900, max_value=6000).map(lambda n: "[" * n + "]" * n)
    | st.integers(min_value=900, max_value=6000).map(lambda n: '{"type": ' * n + "1" + "}" * n)
)


async def _answered(ws: aiohttp.ClientWebSocketResponse, probe: str) -> list[dict[str, Any]]:
    """Frames up to the answer to the probe; the socket may close only for an invalid session."""
    frames: list[dict[str, Any]] = []
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            assert ws.close_code == 4401 and frames and frames[-1].get("code") == "session_invalid", (ws.close_code, frames)
            return frames
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = json.loads(msg.data)
        assert frame["type"] in ("session", "history", "ack", "message", "error"), frame
        if frame["type"] == "error":
            assert isinstance(frame["error"], str) and frame["error"]
            assert "could not be" not in frame["error"], frame  # a precise error, not a failed turn
        frames.append(frame)
        if frame.get("error") == f"unknown frame type {probe!r}":
            return frames


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=raw_frames, after_hello=st.booleans())
async def test_any_frame_gets_an_answer_and_the_socket_stays_usable(client: TestClient, raw: str, after_hello: bool) -> None:
    async with connect(client) as ws:
        if after_hello:
            await open_session(ws)
        await ws.send_str(raw)
        await ws.send_json({"type": "probe"})
        await _answered(ws, "probe")
        if not ws.closed:
            await ws.send_json({"type": "probe-2"})
            await _answered(ws, "probe-2")
    resp = await client.get("/healthz")
    assert resp.status == 200
