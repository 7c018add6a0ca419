"""Real-time fan-out to agent consoles: an in-process publish/subscribe hub.

Each console WebSocket subscribes and gets every event; the handler filters what its agent may
see. Several gateway processes would bridge hubs over Redis pub/sub (see docs/handover.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

Event = dict[str, Any]

# A console that stops reading must not hold the gateway's memory hostage.
MAX_BACKLOG = 1000


class Hub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(MAX_BACKLOG)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def publish(self, event: Event) -> None:
        for queue in list(self._subscribers):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A console that fell this far behind starts over: it re-fetches its lists.
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait({"type": "resync"})

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
