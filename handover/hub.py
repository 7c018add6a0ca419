"""Real-time fan-out to agent consoles: an in-process publish/subscribe hub.

Each console WebSocket subscribes and gets every event; events that carry data carry their
`scope` (who may see them, made by the desk when it publishes), and the stream handler
(`handover.api.scoped`) passes each only to the consoles whose agent may see it. With `RESONANZ_REDIS_URL` set, `RedisHub` bridges the hubs of several gateway processes over
one Redis pub/sub channel (see docs/handover.md, "Several gateway processes").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import structlog

Event = dict[str, Any]

log = structlog.get_logger(__name__)

# A console that stops reading must not hold the gateway's memory hostage.
MAX_BACKLOG = 1000


class Hub:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        # Called with every event, local or from another process, before any subscriber gets it:
        # for state every process must update at once (e.g. the auth cache on a revocation).
        self.listeners: list[Callable[[Event], None]] = []

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(MAX_BACKLOG)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def publish(self, event: Event) -> None:
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - one broken listener must not stop the fan-out
                log.exception("hub.listener_failed", event_type=event.get("type"))
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

    async def start(self) -> None:
        """Nothing to connect for the in-process hub (see `RedisHub`)."""

    async def close(self) -> None:
        """Nothing to release for the in-process hub (see `RedisHub`)."""


def redacted(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class HubUnavailable(RuntimeError):
    """Redis is configured but cannot be reached when the gateway starts."""


class RedisHub(Hub):
    """A `Hub` whose events also reach the hubs of the other gateway processes, over Redis pub/sub.

    Delivery: `publish()` hands an event to the local subscribers at once (exactly like `Hub`, no
    Redis round trip) and queues it, wrapped as `{"origin": <this process>, "event": ...}`, for a
    publisher task that sends it to the channel in order. A reader task receives the channel and
    passes on events of other origins; its own echo is skipped. So every subscriber gets every
    event exactly once, each process's events in the order they were published.

    Failures: Redis unreachable at `start()` is a misconfiguration and raises `HubUnavailable`.
    A connection lost later is logged and re-established with exponential backoff; after the
    reader is subscribed again, local subscribers get `{"type": "resync"}` (the consoles re-fetch
    their lists) because events of other processes may have been missed. Events that could not be
    sent meanwhile wait in a bounded queue and go out after the reconnect; if the queue overflowed,
    the other processes get a `resync` too.

    `subscribers` counts a running bridge as one more listener: consoles on other processes may be
    watching, so callers that skip publishing when nobody listens must still publish.
    """

    READ_TIMEOUT = 5.0
    CONNECT_TIMEOUT = 5.0
    CLOSE_TIMEOUT = 5.0

    def __init__(
        self,
        url: str,
        *,
        channel: str = "resonanz:hub",
        backoff: tuple[float, float] = (0.2, 10.0),
        max_pending: int = 10_000,
    ) -> None:
        super().__init__()
        self.url = url
        self.channel = channel
        self.origin = uuid.uuid4().hex
        self._backoff_min, self._backoff_max = backoff
        self._outgoing: asyncio.Queue[str | None] = asyncio.Queue(max_pending)
        self._lost = False  # outgoing events were dropped: the other processes must resync
        self._redis: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._running = False
        self._closed = False

    # --- the Hub interface -------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        super().publish(event)
        if self._closed:
            return
        try:
            data = self._envelope(event)
        except (TypeError, ValueError) as exc:
            log.error("hub.redis.unserialisable_event", event_type=event.get("type"), error=str(exc))
            return
        if self._outgoing.full():
            self._outgoing.get_nowait()  # the oldest goes; the other processes will resync
            if not self._lost:
                log.error("hub.redis.backlog_full", pending=self._outgoing.maxsize)
            self._lost = True
        self._outgoing.put_nowait(data)

    @property
    def subscribers(self) -> int:
        return super().subscribers + (1 if self._running else 0)

    @property
    def local_subscribers(self) -> int:
        return super().subscribers

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        if self._running or self._closed:
            raise RuntimeError("a RedisHub starts once")
        # No silent retries inside redis-py: this class notices a lost connection and reconnects,
        # so that it can tell the consoles to resync.
        self._redis = Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self.CONNECT_TIMEOUT,
            socket_keepalive=True,
            health_check_interval=30,
            client_name=f"resonanz-hub-{self.origin[:12]}",
        )
        try:
            await asyncio.wait_for(self._redis.ping(), self.CONNECT_TIMEOUT * 2)
            self._pubsub = await self._subscribe()
        except (RedisError, OSError) as exc:
            log.error("hub.redis.unreachable", url=redacted(self.url), error=f"{type(exc).__name__}: {exc}")
            await self._redis.aclose(close_connection_pool=True)
            self._redis = None
            raise HubUnavailable(
                f"RESONANZ_REDIS_URL is set, but Redis at {redacted(self.url)} is not reachable "
                f"({type(exc).__name__}: {exc}); start Redis or unset RESONANZ_REDIS_URL"
            ) from exc
        self._running = True
        self._reader = asyncio.create_task(self._read_loop(), name="hub-redis-reader")
        self._publisher = asyncio.create_task(self._publish_loop(), name="hub-redis-publisher")
        log.info("hub.redis.connected", url=redacted(self.url), channel=self.channel, origin=self.origin)

    async def close(self) -> None:
        """Send what is queued (for at most CLOSE_TIMEOUT seconds), then disconnect."""
        if self._closed:
            return
        self._closed = True
        self._running = False
        if self._publisher is not None:
            if self._outgoing.full():
                self._outgoing.get_nowait()
            self._outgoing.put_nowait(None)  # after everything already queued
            done, _ = await asyncio.wait({self._publisher}, timeout=self.CLOSE_TIMEOUT)
            if not done:
                log.warning("hub.redis.close_timeout", unsent=self._outgoing.qsize())
        tasks = [t for t in (self._publisher, self._reader) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._close_pubsub()
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
            self._redis = None
        log.info("hub.redis.closed", channel=self.channel, origin=self.origin)

    # --- internals ---------------------------------------------------------------------------

    def _envelope(self, event: Event) -> str:
        return json.dumps({"origin": self.origin, "event": event}, default=str, separators=(",", ":"))

    async def _subscribe(self) -> Any:
        """A fresh pub/sub connection, subscribed: from its return on, no event is missed."""
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.CONNECT_TIMEOUT * 2
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"no confirmation of SUBSCRIBE {self.channel}")
                msg = await pubsub.get_message(timeout=remaining)
                if msg is not None and msg["type"] == "subscribe":
                    return pubsub
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise

    async def _close_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    def _receive(self, data: bytes | str) -> None:
        try:
            envelope = json.loads(data)
            origin, event = envelope["origin"], envelope["event"]
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("hub.redis.bad_message", error=str(exc))
            return
        if origin == self.origin or not isinstance(event, dict):
            return  # our own echo: local subscribers had it at publish time
        Hub.publish(self, event)

    async def _read_loop(self) -> None:
        from redis.exceptions import RedisError

        backoff = self._backoff_min
        while True:
            if self._pubsub is None:
                try:
                    self._pubsub = await self._subscribe()
                except Exception as exc:  # noqa: BLE001 - keep trying, with backoff
                    log.warning("hub.redis.reconnect_failed", error=f"{type(exc).__name__}: {exc}", retry_in=backoff,
                                exc_info=not isinstance(exc, (RedisError, OSError)))
                    await asyncio.sleep(backoff)  # backoff before the next attempt
                    backoff = min(backoff * 2, self._backoff_max)
                    continue
                log.info("hub.redis.reconnected", channel=self.channel, origin=self.origin)
                # Events of other processes may have gone by meanwhile: the consoles re-fetch.
                Hub.publish(self, {"type": "resync"})
            try:
                msg = await self._pubsub.get_message(timeout=self.READ_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - whatever broke the connection, the reader must go on
                log.error("hub.redis.connection_lost", error=f"{type(exc).__name__}: {exc}", retry_in=backoff,
                          exc_info=not isinstance(exc, (RedisError, OSError)))
                await self._close_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)
                continue
            backoff = self._backoff_min  # the connection works (reset only now: no resync storm on flapping)
            if msg is not None and msg["type"] == "message":
                self._receive(msg["data"])

    async def _publish_loop(self) -> None:
        from redis.exceptions import RedisError

        backoff = self._backoff_min
        failing = False
        data: str | None = None
        while True:
            if data is None:
                data = await self._outgoing.get()
                if data is None:
                    return  # close(): everything before it has been sent
            try:
                if self._lost:
                    await self._redis.publish(self.channel, self._envelope({"type": "resync"}))
                    self._lost = False
                await self._redis.publish(self.channel, data)
            except (RedisError, OSError) as exc:
                if not failing:
                    log.error("hub.redis.publish_failed", error=f"{type(exc).__name__}: {exc}", pending=self._outgoing.qsize())
                failing = True
                await asyncio.sleep(backoff)  # backoff before sending again
                backoff = min(backoff * 2, self._backoff_max)
                continue
            except Exception:  # noqa: BLE001 - not a connection problem: retrying would not help
                log.exception("hub.redis.publish_error")
                self._lost = True  # this event is dropped: the other processes resync
            data = None
            if failing:
                log.info("hub.redis.publish_recovered")
                failing, backoff = False, self._backoff_min


def create_hub(redis_url: str | None, channel: str = "resonanz:hub") -> Hub:
    """The in-process hub, or the Redis-bridged one when a Redis URL is configured."""
    return RedisHub(redis_url, channel=channel) if redis_url else Hub()
