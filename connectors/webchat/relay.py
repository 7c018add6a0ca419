"""Live web chat frames across gateway processes: one Redis pub/sub channel per chat session.

A frame for a session (a message the customer should see now) is pushed at once to the sockets
this process holds (the connector does that) and handed to the relay, which publishes it on the
session's channel `<RESONANZ_REDIS_CHANNEL>:webchat:<session public id>`. A process subscribes to
the channel of every session it holds a socket of (from the first socket's hello to the last
socket's close), so Redis routes a frame only to the gateways that need it.

Exactly once: a frame carries the publishing process's origin, and a process skips its own echo
(its sockets had the frame at once). In order per session: one publisher task sends the frames
of this process in the order they were published, over one connection; Redis keeps that order to
every subscriber. Frames of one session published by two processes at the same moment arrive in
the order Redis received them.

Failures: Redis unreachable at start-up raises `RelayUnavailable` (like the console hub). A lost
connection is re-established with backoff; once subscribed again, the connector is asked to
`resync` every session it holds (it sends each socket the history again: messages are stored
before they are pushed, so nothing the customer should see is lost, and the widget skips what it
already shows). Frames that could not be published meanwhile wait in a bounded queue and go out
after the reconnect; if that queue overflows, the sessions whose frames were dropped get a resync
on every process.

Without Redis (`LocalRelay`) nothing leaves the process: the connector's own sockets are all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

Frame = dict[str, Any]
# (session public id, frame) -> pushed to this process's sockets of that session
Deliver = Callable[[str, Frame], Awaitable[None]]
# session public ids -> each of their sockets gets the history again
Resync = Callable[[Iterable[str]], Awaitable[None]]


class RelayUnavailable(RuntimeError):
    """Redis is configured but cannot be reached when the gateway starts."""


class LocalRelay:
    """One process: the connector's sockets are all there is."""

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to release."""

    async def join(self, session_id: str) -> None:
        """A socket of the session opened here."""

    def leave(self, session_id: str) -> None:
        """A socket of the session closed here."""

    def publish(self, session_id: str, frame: Frame) -> None:
        """A frame for the session, already pushed to this process's sockets."""


class RedisRelay(LocalRelay):
    """Frames for web chat sessions between gateway processes, over Redis pub/sub."""

    CONNECT_TIMEOUT = 5.0
    READ_TIMEOUT = 5.0
    CLOSE_TIMEOUT = 5.0
    BATCH = 200  # frames published in one round trip (a pipeline) when many are waiting

    def __init__(
        self, url: str, prefix: str, *, deliver: Deliver, resync: Resync,
        backoff: tuple[float, float] = (0.2, 10.0), max_pending: int = 10_000,
    ) -> None:
        self.url = url
        self.prefix = f"{prefix}:webchat:"
        self.origin = uuid.uuid4().hex
        self._deliver, self._resync = deliver, resync
        self._backoff_min, self._backoff_max = backoff
        self._sessions: Counter[str] = Counter()  # sockets held here, per session
        self._subscribed: set[str] = set()  # sessions whose SUBSCRIBE went to the current connection
        self._confirmed: dict[str, asyncio.Future[None]] = {}  # SUBSCRIBE sent, confirmation awaited
        self._outgoing: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(max_pending)
        self._lost: set[str] = set()  # sessions whose frames were dropped: every process resyncs them
        self._lock = asyncio.Lock()  # (un)subscribing and re-connecting, one at a time
        self._redis: Any = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._early: list[dict[str, Any]] = []  # read while (re)subscribing, not yet passed on
        self._closed = False

    # --- the relay interface ---------------------------------------------------------------------

    async def join(self, session_id: str) -> None:
        """Count the socket; the first of a session subscribes, and returns once Redis confirmed
        it (or after CONNECT_TIMEOUT): a frame published after that reaches this process. So the
        history the socket reads next plus the frames that follow miss nothing."""
        self._sessions[session_id] += 1
        if self._closed:
            return
        async with self._lock:
            await self._sync(session_id)
        waiting = self._confirmed.get(session_id)
        if waiting is not None:
            try:
                await asyncio.wait_for(asyncio.shield(waiting), self.CONNECT_TIMEOUT)
            except TimeoutError:
                log.warning("webchat.relay.subscribe_unconfirmed", session=session_id)

    def leave(self, session_id: str) -> None:
        self._sessions[session_id] -= 1
        if self._sessions[session_id] > 0:
            return
        del self._sessions[session_id]
        if not self._closed:
            self._spawn(self._sync_locked(session_id))

    def publish(self, session_id: str, frame: Frame) -> None:
        if self._closed:
            return
        data = json.dumps({"origin": self.origin, "frame": frame}, default=str, separators=(",", ":"))
        if self._outgoing.full():
            dropped = self._outgoing.get_nowait()
            if dropped is not None:
                if not self._lost:
                    log.error("webchat.relay.backlog_full", pending=self._outgoing.maxsize)
                self._lost.add(dropped[0])
        self._outgoing.put_nowait((session_id, data))

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        # No silent retries inside redis-py: this class notices a lost connection, reconnects and
        # has the sockets resync.
        self._redis = Redis.from_url(
            self.url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=self.CONNECT_TIMEOUT,
            socket_keepalive=True, health_check_interval=30, client_name=f"resonanz-webchat-{self.origin[:12]}",
        )
        try:
            await asyncio.wait_for(self._redis.ping(), self.CONNECT_TIMEOUT * 2)
            async with self._lock:
                await self._connect()
        except (RedisError, OSError, TimeoutError) as exc:
            await self._redis.aclose(close_connection_pool=True)
            self._redis = None
            raise RelayUnavailable(
                f"RESONANZ_REDIS_URL is set, but the web chat relay cannot reach Redis ({type(exc).__name__}: {exc})"
            ) from exc
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="webchat-relay-reader"),
            asyncio.create_task(self._publish_loop(), name="webchat-relay-publisher"),
        ]
        log.info("webchat.relay.connected", prefix=self.prefix, origin=self.origin)

    async def close(self) -> None:
        """Publish what is queued (for at most CLOSE_TIMEOUT seconds), then disconnect."""
        if self._closed:
            return
        self._closed = True
        if self._tasks:
            if self._outgoing.full():
                self._outgoing.get_nowait()
            self._outgoing.put_nowait(None)  # after everything already queued
            done, _ = await asyncio.wait({self._tasks[1]}, timeout=self.CLOSE_TIMEOUT)
            if not done:
                log.warning("webchat.relay.close_timeout", unsent=self._outgoing.qsize())
        for task in (*self._tasks, *self._background):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        await self._drop_connection()
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
            self._redis = None

    # --- subscriptions ---------------------------------------------------------------------------

    def _channel(self, session_id: str) -> str:
        return self.prefix + session_id

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _sync_locked(self, session_id: str) -> None:
        async with self._lock:
            await self._sync(session_id)

    async def _sync(self, session_id: str) -> None:
        """Make the connection's subscription match whether a socket of the session is here (under
        the lock, so that a leave and a quick re-join never end unsubscribed)."""
        if self._pubsub is None:
            return  # not connected: the reconnect subscribes to every session held then
        want, have = session_id in self._sessions, session_id in self._subscribed
        try:
            if want and not have:
                self._confirmed[session_id] = asyncio.get_running_loop().create_future()
                self._subscribed.add(session_id)
                await self._pubsub.subscribe(self._channel(session_id))
            elif have and not want:
                self._subscribed.discard(session_id)
                self._confirmed.pop(session_id, None)
                await self._pubsub.unsubscribe(self._channel(session_id))
        except Exception as exc:  # noqa: BLE001 - the reader notices the broken connection and reconnects
            log.warning("webchat.relay.subscription_failed", error=f"{type(exc).__name__}: {exc}")

    async def _connect(self) -> None:
        """A fresh pub/sub connection subscribed to every session held here (under the lock);
        returns once Redis confirmed them all."""
        pubsub = self._redis.pubsub()
        try:
            sessions = set(self._sessions)
            # The first channel is our own: a connection with no session yet is still a listener.
            channels = [f"{self.prefix[:-1]}-gateway:{self.origin}", *map(self._channel, sessions)]
            await pubsub.subscribe(*channels)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.CONNECT_TIMEOUT * 2
            confirmed, early = 0, []
            while confirmed < len(channels):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError(f"no confirmation of SUBSCRIBE for {len(channels) - confirmed} channels")
                msg = await pubsub.get_message(timeout=remaining)
                if msg is not None and msg["type"] == "subscribe":
                    confirmed += 1
                elif msg is not None:
                    early.append(msg)  # a frame on a channel confirmed already: the reader passes it on
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        self._pubsub, self._subscribed, self._early = pubsub, sessions, early
        for waiting in self._confirmed.values():
            if not waiting.done():
                waiting.set_result(None)
        self._confirmed.clear()

    async def _drop_connection(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._subscribed = set()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    # --- reading ---------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        from redis.exceptions import RedisError

        backoff = self._backoff_min
        while True:
            if self._pubsub is None:
                try:
                    async with self._lock:
                        await self._connect()
                except Exception as exc:  # noqa: BLE001 - keep trying, with backoff
                    log.warning("webchat.relay.reconnect_failed", error=f"{type(exc).__name__}: {exc}", retry_in=backoff,
                                exc_info=not isinstance(exc, (RedisError, OSError, TimeoutError)))
                    await asyncio.sleep(backoff)  # backoff before the next attempt
                    backoff = min(backoff * 2, self._backoff_max)
                    continue
                log.info("webchat.relay.reconnected", sessions=len(self._subscribed))
                # Frames of other processes may have gone by meanwhile: the sockets get the history.
                self._spawn(self._resync_logged(list(self._subscribed)))
            try:
                msg = self._early.pop(0) if self._early else await self._pubsub.get_message(timeout=self.READ_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - whatever broke the connection, the reader goes on
                log.error("webchat.relay.connection_lost", error=f"{type(exc).__name__}: {exc}", retry_in=backoff,
                          exc_info=not isinstance(exc, (RedisError, OSError)))
                async with self._lock:
                    await self._drop_connection()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max)
                continue
            backoff = self._backoff_min
            if msg is None:
                continue
            channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else str(msg["channel"])
            session_id = channel[len(self.prefix):] if channel.startswith(self.prefix) else None
            if msg["type"] == "subscribe" and session_id is not None:
                waiting = self._confirmed.pop(session_id, None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(None)
            elif msg["type"] == "message" and session_id is not None:
                await self._receive(session_id, msg["data"])

    async def _receive(self, session_id: str, data: bytes | str) -> None:
        try:
            envelope = json.loads(data)
            origin = envelope["origin"]
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("webchat.relay.bad_message", error=str(exc))
            return
        if origin == self.origin or session_id not in self._sessions:
            return  # our own echo (our sockets had it at once), or no socket of it is left here
        if envelope.get("resync"):
            await self._resync_logged([session_id])
            return
        frame = envelope.get("frame")
        if isinstance(frame, dict):
            try:
                await self._deliver(session_id, frame)
            except Exception:  # noqa: BLE001 - one session's failure must not stop the others
                log.exception("webchat.relay.deliver_failed", session=session_id)

    async def _resync_logged(self, sessions: list[str]) -> None:
        try:
            await self._resync(sessions)
        except Exception:  # noqa: BLE001 - the customer still gets everything on the next reconnect
            log.exception("webchat.relay.resync_failed", sessions=len(sessions))

    # --- publishing ------------------------------------------------------------------------------

    async def _publish_loop(self) -> None:
        from redis.exceptions import RedisError

        backoff = self._backoff_min
        failing = False
        batch: list[tuple[str, str]] = []
        stop = False
        while True:
            if not batch:
                item = await self._outgoing.get()
                while item is not None:
                    batch.append(item)
                    if len(batch) >= self.BATCH or self._outgoing.empty():
                        break
                    item = self._outgoing.get_nowait()
                stop = item is None
                if not batch and stop:
                    return  # close(): everything before it has been published
            try:
                lost, self._lost = self._lost, set()
                pipe = self._redis.pipeline(transaction=False)
                for session_id in lost:
                    pipe.publish(self._channel(session_id), json.dumps({"origin": self.origin, "resync": True}))
                for session_id, data in batch:
                    pipe.publish(self._channel(session_id), data)
                await pipe.execute()
            except (RedisError, OSError) as exc:
                self._lost |= lost
                if not failing:
                    log.error("webchat.relay.publish_failed", error=f"{type(exc).__name__}: {exc}",
                              pending=self._outgoing.qsize() + len(batch))
                failing = True
                await asyncio.sleep(backoff)  # backoff before publishing again
                backoff = min(backoff * 2, self._backoff_max)
                continue
            except Exception:  # noqa: BLE001 - not a connection problem: retrying would not help
                log.exception("webchat.relay.publish_error")
                self._lost |= {session_id for session_id, _ in batch}
            batch = []
            if failing:
                log.info("webchat.relay.publish_recovered")
                failing, backoff = False, self._backoff_min
            if stop:
                return


def create_relay(redis_url: str | None, prefix: str, *, deliver: Deliver, resync: Resync) -> LocalRelay:
    """The Redis relay when a Redis URL is configured, else the process-local one."""
    return RedisRelay(redis_url, prefix, deliver=deliver, resync=resync) if redis_url else LocalRelay()
