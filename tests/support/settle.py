"""Waiting for work another task or process does: poll an observable condition with a deadline."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


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
