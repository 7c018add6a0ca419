"""A web chat customer for tests, speaking the protocol the widget speaks: connect with the page's
Origin, say hello without a token to be issued one, say hello with it after a reload."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient


def own_origin(client: TestClient) -> str:
    return str(client.make_url("/").origin())


def connect(client: TestClient, *, origin: str | None = None, **kwargs: Any) -> Any:
    """The WebSocket as a page of the gateway's own origin opens it (async context manager)."""
    return client.ws_connect("/webchat/ws", origin=origin or own_origin(client), **kwargs)


async def hello(ws: aiohttp.ClientWebSocketResponse, token: str | None) -> dict:
    """Say hello with a server-issued token; the history frame is returned."""
    await ws.send_json({"type": "hello", "token": token, "language": "de"})
    return await ws.receive_json(timeout=10)


async def open_session(ws: aiohttp.ClientWebSocketResponse) -> tuple[str, dict]:
    """A new customer: hello without a token. Returns (the issued token, the history frame)."""
    await ws.send_json({"type": "hello", "language": "de"})
    issued = await ws.receive_json(timeout=10)
    assert issued["type"] == "session", issued
    return issued["token"], await ws.receive_json(timeout=10)


async def until_ack(ws: aiohttp.ClientWebSocketResponse) -> list[dict]:
    frames = []
    while not frames or frames[-1]["type"] != "ack":
        frames.append(await ws.receive_json(timeout=10))
    return frames
