"""A scripted engine that echoes ("re:<text>") and holds turns starting with "held" until the
test opens its gate; and counting stored messages. For the kill and topology fault tests."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from resonanz.store import Database
from resonanz.store.models import Message
from tests.support.scripted_engine import ScriptedEngine


class EchoEngine(ScriptedEngine):
    """Answers "re:<text>"; a message starting with "held" waits until `gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.held = 0
        self.changed = asyncio.Condition()

    async def turn(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.turns.append(body)
        if body["message"].startswith("held"):
            async with self.changed:
                self.held += 1
                self.changed.notify_all()
            await self.gate.wait()
        return web.json_response({
            "messages": [{"text": "re:" + body["message"]}],
            "parse_data": {"intent": {"name": "greet", "confidence": 0.97}, "entities": []},
            "slots": dict(body["set_slots"]), "active_loop": None,
        })


async def count(db: Database, *where: Any) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Message).where(*where)) or 0)
