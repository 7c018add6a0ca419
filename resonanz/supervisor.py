"""Every background task starts here: it is kept referenced, its failure is logged with the
traceback, and work that must complete (an outbox retry, an offer's expiry, crash recovery) is
re-armed with back-off after a failure instead of dying silently with its task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class TaskSupervisor:
    """Starts and watches background tasks of one component (`name` in the logs)."""

    def __init__(self, name: str, *, retry_base: float = 0.5, retry_max: float = 60.0) -> None:
        self.name = name
        self.retry_base, self.retry_max = retry_base, retry_max
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        #: How many times a task failed; `changed` is notified on every failure (tests wait on it).
        self.failures = 0
        self.changed = asyncio.Condition()

    def spawn(self, job: str, work: Callable[[], Awaitable[Any]], *, delay: float = 0.0,
              retry: bool = False) -> asyncio.Task[Any]:
        """Run `work()` after `delay` seconds. With `retry`, a failure runs it again after a
        growing back-off until it succeeds or the supervisor closes; without, it is logged."""

        async def run() -> Any:
            if delay > 0:
                await asyncio.sleep(delay)  # a deadline (a retry time, an offer's expiry)
            attempt = 0
            while True:
                try:
                    return await work()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    attempt += 1
                    log.exception("background.failed", component=self.name, job=job, attempt=attempt,
                                  retrying=retry and not self._closed)
                    self.failures += 1
                    async with self.changed:
                        self.changed.notify_all()
                    if not retry or self._closed:
                        return None
                    await asyncio.sleep(min(self.retry_max, self.retry_base * 2 ** (attempt - 1)))

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def idle(self) -> None:
        """Wait until no task of this supervisor is running (tasks may start others meanwhile)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
