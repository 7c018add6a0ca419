"""A graceful stop (SIGTERM or SIGINT to `resonanz run`, or any `AppRunner.cleanup()`).

aiohttp first stops listening, then runs the app's `on_shutdown` hook, then waits for the
handlers still running, then runs the cleanup. The hook installed here:

1. waits, at most `RESONANZ_SHUTDOWN_SECONDS` (20) or until a second signal, until no turn runs: neither a REST or web chat
   request's turn (`InFlight`, around the connectors' `on_message` and `accept`) nor an accepted
   push-channel turn (`Dispatcher.settled`). A turn that finishes stores and sends its replies
   as always: a reply in flight at SIGTERM reaches the customer before the process exits;
2. closes every live socket with a reconnect hint - web chat sockets and agent console streams
   with 1012 "service restart" (the widget and the console reconnect on any close but 4401/1008,
   with back-off, and get what they missed with the history);
3. returns; aiohttp then gives handlers still running `HANDLER_GRACE` seconds, twice at most
   (finish, then cancelled), and the cleanup cancels turns still running and hands their inbound
   messages' leases back (`InboundLeases.close`), so the next process answers them at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import structlog

log = structlog.get_logger(__name__)

# Seconds aiohttp gives a request handler still running after the hook (AppRunner shutdown_timeout).
HANDLER_GRACE = 3.0

P = ParamSpec("P")
R = TypeVar("R")


class InFlight:
    """Counts calls in progress of the functions it wraps, and tells when there are none."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def track(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        async def tracked(*args: P.args, **kwargs: P.kwargs) -> R:
            self.count += 1
            self._idle.clear()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.count -= 1
                if not self.count:
                    self._idle.set()

        return tracked

    async def idle(self) -> None:
        await self._idle.wait()


async def drain(*, seconds: float, inflight: InFlight, settled: Callable[[], Awaitable[Any]],
                close_live: Sequence[Callable[[], Awaitable[Any]]], hurry: asyncio.Event | None = None) -> bool:
    """Wait up to `seconds` for running turns (less once `hurry` is set: a second signal), then
    close the live sockets. True when every turn finished."""
    started = time.monotonic()
    log.info("shutdown.draining", requests=inflight.count, limit_seconds=seconds)

    async def quiet() -> None:
        while True:
            await inflight.idle()
            await settled()  # returns when no accepted turn runs
            if inflight.count == 0:  # and none started meanwhile (no await since `settled`)
                return

    waiting = asyncio.ensure_future(quiet())
    hurried = asyncio.ensure_future((hurry or asyncio.Event()).wait())
    await asyncio.wait({waiting, hurried}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finished = waiting.done()
    waiting.cancel()
    hurried.cancel()
    if not finished:
        log.warning("shutdown.turns_unfinished", requests=inflight.count, hurried=hurried.done() and not
                    hurried.cancelled(), after_seconds=round(time.monotonic() - started, 3))
    results = await asyncio.gather(*(close() for close in close_live), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            log.warning("shutdown.close_failed", error=repr(result))
    log.info("shutdown.drained", finished=finished, seconds=round(time.monotonic() - started, 3))
    return finished
