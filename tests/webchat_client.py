"""A web chat customer for tests: opens a session the way the widget does and speaks the protocol."""

from __future__ import annotations

import secrets

import aiohttp


async def hello(ws: aiohttp.ClientWebSocketResponse, session: str | None) -> dict:
    """Say hello with a session token; the first frame back (history) is returned."""
    await ws.send_json({"type": "hello", "session_id": session, "language": "de"})
    return await ws.receive_json(timeout=10)


def new_session() -> str:
    return secrets.token_urlsafe(18)


async def until_ack(ws: aiohttp.ClientWebSocketResponse) -> list[dict]:
    frames = []
    while not frames or frames[-1]["type"] != "ack":
        frames.append(await ws.receive_json(timeout=10))
    return frames
