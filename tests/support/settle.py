"""Waiting for work another task or process does: poll an observable condition with a deadline."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

from resonanz.store import Database
from resonanz.store.models import Message
from resonanz.store.vocabulary import Direction, MessageStatus


async def until(condition: Callable[[], Awaitable[bool] | bool], what: str, timeout: float,
                detail: Callable[[], str] | None = None) -> None:
    """Return once `condition()` holds; fail naming `what` (and `detail()`, e.g. a log) after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}" + (f"\n{detail()}" if detail else ""))
        await asyncio.sleep(0.05)


async def pipeline_settled(db: Database) -> bool:
    """Every inbound message processed and no outbound one waiting or being sent: nothing left
    that could still produce a reply."""
    async with db.session() as s:
        open_in = await s.scalar(select(func.count()).select_from(Message).where(
            Message.direction == Direction.IN, Message.status != MessageStatus.PROCESSED))
        open_out = await s.scalar(select(func.count()).select_from(Message).where(
            Message.direction == Direction.OUT, Message.status.in_((MessageStatus.PENDING, MessageStatus.SENDING))))
    return not open_in and not open_out
