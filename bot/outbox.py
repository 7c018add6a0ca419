"""The persisted outbox: every outbound message is stored before it is sent.

    stored `pending` ──claim──▶ `sending` ──send──▶ `sent`
                                      ├─ timeout, 5xx, 429 ──▶ `pending` + next_attempt_at (backoff)
                                      ├─ 4xx, opted out, no channel ──▶ `failed` (shown to the agent)
                                      └─ gateway died here ──▶ after the lease, the provider is asked:
                                           arrived ──▶ `sent` · not there ──▶ `pending` (sent again)
                                           no answer ──▶ `unknown` (shown to the agent)

Messages of one conversation leave in order: a message waiting for its retry holds back the ones
after it. The claim is a conditional UPDATE, so two gateway processes never send the same row.
A row left `sending` by a process that died may or may not have reached the provider (neither
Telegram nor Twilio takes an idempotency key). Twilio lists what it got, so an SMS or WhatsApp
send is settled by asking it; Telegram's Bot API cannot say, so such a message is never resent
automatically - that would risk a duplicate - but marked `unknown` and shown to the agent.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
import weakref
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, or_, select, update

from bot.visibility import InternalMessageError, outbound_of, sendable
from connectors.base import ChannelAddress, Connector, DeliveryError
from resonanz.metrics import Metrics
from resonanz.settings import Settings
from resonanz.supervisor import TaskSupervisor
from resonanz.store import Database
from resonanz.store.models import ChannelIdentity, Conversation, Message, utcnow
from resonanz.store.vocabulary import MessageStatus

log = structlog.get_logger(__name__)

# How far the provider's clock may be behind ours when it is asked what it got since a message was stored.
PROVIDER_CLOCK_SKEW = timedelta(minutes=2)

# Called with (conversation_id, message_public_id) when a message's status changed for good.
StatusListener = Callable[[str, str], Awaitable[None]]


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter in its upper half: attempt 1 -> ~base, 2 -> ~2*base ..."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay / 2 + random.random() * delay / 2  # noqa: S311 - jitter, not cryptography


# A sent (or failed) message's outcome - parameters named as its columns, and `pk` - with its lease
# let go. Built once: building an UPDATE costs about as much CPU as its round trip.
_RECORD = (update(Message.__table__).where(Message.__table__.c.id == bindparam("pk"))
           .values(lease_owner=None, lease_expires_at=None))


class Outbox:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        connectors: Mapping[str, Connector] | Callable[[], Mapping[str, Connector]],
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics or Metrics()
        self._connectors = connectors
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.tasks = TaskSupervisor("outbox")  # retries: `tasks.idle()` means every send is recorded
        self._sweeper = TaskSupervisor("outbox sweeper")  # runs for as long as the outbox
        # This process, as the owner of the messages it is sending (see `lease`).
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.listeners: list[StatusListener] = []
        self._closed = False

    def _connector(self, channel: str) -> Connector | None:
        connectors = self._connectors() if callable(self._connectors) else self._connectors
        return connectors.get(channel)

    # --- sending -------------------------------------------------------------------------------

    async def flush(self, conversation_id: str) -> dict[str, tuple[str, str | None]]:
        """Send the conversation's due messages, in order. Returns {message id: (status, error)}
        for every message attempted in this call."""
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        outcomes: dict[str, tuple[str, str | None]] = {}
        async with lock:
            while not self._closed:
                batch, address, opted_out = await self._claim(conversation_id)
                if not batch:
                    break
                stop = await self._send_batch(conversation_id, batch, address, opted_out, outcomes)
                if stop:
                    break
        return outcomes

    @staticmethod
    async def opted_out(s: Any, address: ChannelAddress) -> bool:
        return bool(
            await s.scalar(
                select(ChannelIdentity.opted_out).where(
                    ChannelIdentity.channel == address.channel, ChannelIdentity.external_id == address.recipient
                )
            )
        )

    async def send_claimed(
        self, conversation_id: str, rows: list[Message], address: ChannelAddress, opted_out: bool
    ) -> dict[str, tuple[str, str | None]]:
        """Send messages stored directly as `sending` (their transaction made sure nothing
        earlier was waiting): saves the claim round trip on the common path."""
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        outcomes: dict[str, tuple[str, str | None]] = {}
        async with lock:
            await self._send_batch(conversation_id, rows, address, opted_out, outcomes)
        return outcomes

    async def _claim(self, conversation_id: str) -> tuple[list[Message], ChannelAddress | None, bool]:
        """Mark the leading due messages `sending` (one transaction) and return them."""
        now = utcnow()
        async with self.db.session() as s:
            rows = (
                await s.scalars(
                    select(Message)
                    .where(
                        Message.conversation_id == conversation_id,
                        sendable(),
                        Message.status == MessageStatus.PENDING,
                    )
                    .order_by(Message.id)
                    .limit(20)
                )
            ).all()
            if not rows:
                return [], None, False
            due: list[Message] = []
            for m in rows:
                if m.next_attempt_at is not None and m.next_attempt_at > now:
                    self._schedule(conversation_id, (m.next_attempt_at - now).total_seconds())
                    break
                due.append(m)
            if not due:
                return [], None, False
            claimed = (
                await s.execute(
                    update(Message)
                    .where(Message.id.in_([m.id for m in due]), Message.status == MessageStatus.PENDING)
                    .values(status=MessageStatus.SENDING, attempts=Message.attempts + 1, **self.lease())
                    .execution_options(synchronize_session=False)
                )
            ).rowcount
            if claimed != len(due):
                # Another process claimed some of them first: leave this round to it.
                await s.rollback()
                return [], None, False
            conv = await s.get(Conversation, conversation_id)
            assert conv is not None
            address = ChannelAddress.from_dict(conv.address)
            opted_out = await self.opted_out(s, address)
            for m in due:
                s.expunge(m)
                m.attempts += 1
            return list(due), address, opted_out

    async def _send_batch(
        self,
        conversation_id: str,
        batch: list[Message],
        address: ChannelAddress | None,
        opted_out: bool,
        outcomes: dict[str, tuple[str, str | None]],
    ) -> bool:
        """Send claimed messages in order; record each outcome as soon as it is known.
        Returns True when the conversation must wait (a retry is scheduled)."""
        assert address is not None
        connector = self._connector(address.channel)
        results: dict[int, dict[str, Any]] = {}
        taken: set[str] = set()  # provider ids found for a retried message of this batch
        wait: float | None = None
        final: list[str] = []
        for m in batch:
            if wait is not None:
                # Held back behind a message that waits for its retry: not attempted.
                results[m.id] = {"status": MessageStatus.PENDING, "attempts": m.attempts - 1}
                await self._record(m.id, results[m.id])
                continue
            try:
                outbound = outbound_of(m)
            except InternalMessageError:
                # Never reached through _claim's query; loud if a future path gets here anyway.
                log.error("outbound.internal_message_refused", channel=address.channel, message=m.public_id)
                results[m.id] = {"status": MessageStatus.FAILED, "error": "internal messages are never sent to customers"}
                outbound = None
            if outbound is None:
                pass
            elif connector is None:
                results[m.id] = {"status": MessageStatus.FAILED, "error": f"channel {address.channel!r} is not enabled"}
            elif opted_out:
                results[m.id] = {"status": MessageStatus.FAILED, "error": "the customer opted out of this channel (STOP)"}
            elif m.attempts > 1 and (arrived := await self._arrived(address, m, taken))[1] is not None:
                # An earlier attempt that failed without an answer (a timeout) did arrive.
                results[m.id] = {"status": MessageStatus.SENT, "provider_message_id": arrived[1][:200],
                                 "error": None, "next_attempt_at": None}
                log.info("outbox.reconciled", channel=address.channel, outcome="arrived before the retry")
            else:
                try:
                    provider_id = await connector.send(address, outbound)
                except DeliveryError as exc:
                    results[m.id] = self._failure(m, exc)
                except Exception as exc:  # a connector bug must not lose the message
                    log.exception("outbound.connector_error", channel=address.channel)
                    results[m.id] = self._failure(m, DeliveryError(f"{type(exc).__name__}: {exc}"))
                else:
                    results[m.id] = {"status": MessageStatus.SENT, "error": None, "next_attempt_at": None}
                    if provider_id:
                        results[m.id]["provider_message_id"] = str(provider_id)[:200]
            r = results[m.id]
            # Stored at once, not with the rest of the batch: the provider may report on this
            # message (delivered, failed) while the next one is still being sent.
            await self._record(m.id, r)
            outcomes[m.public_id] = (r["status"], r.get("error"))
            if r["status"] == MessageStatus.PENDING:
                self.metrics.outbox_retries.labels(address.channel).inc()
                wait = (r["next_attempt_at"] - utcnow()).total_seconds()
                m.next_attempt_at = r["next_attempt_at"]
            elif r["status"] == MessageStatus.FAILED:
                self.metrics.outbox_failed.labels(address.channel).inc()
                final.append(m.public_id)
                log.warning("outbound.failed", channel=address.channel, attempts=m.attempts)
        if wait is not None:
            self._schedule(conversation_id, max(0.0, wait))
        for public_id in final:
            await self._notify(conversation_id, public_id)
        return wait is not None

    def lease(self) -> dict[str, Any]:
        """The columns that mark a message as being sent by this process, for a while."""
        return {"lease_owner": self.owner,
                "lease_expires_at": utcnow() + timedelta(seconds=self.settings.outbox_lease_seconds)}

    async def _record(self, pk: int, values: dict[str, Any]) -> None:
        """One statement, committing by itself (`Database.statements`: no BEGIN and COMMIT)."""
        async with self.db.statements() as c:
            await c.execute(_RECORD, {**values, "pk": pk})

    def _failure(self, m: Message, exc: DeliveryError) -> dict[str, Any]:
        error = str(exc)[:1000]
        if exc.permanent:
            return {"status": MessageStatus.FAILED, "error": error, "next_attempt_at": None}
        if m.attempts >= self.settings.outbox_max_attempts:
            return {"status": MessageStatus.FAILED, "error": f"gave up after {m.attempts} attempts: {error}", "next_attempt_at": None}
        delay = backoff(m.attempts, self.settings.outbox_backoff_base, self.settings.outbox_backoff_max)
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, self.settings.outbox_backoff_max))
        log.info("outbound.retry", attempts=m.attempts, delay=round(delay, 3))
        return {"status": MessageStatus.PENDING, "error": error, "next_attempt_at": utcnow() + timedelta(seconds=delay)}

    async def _notify(self, conversation_id: str, public_id: str) -> None:
        for listener in self.listeners:
            try:
                await listener(conversation_id, public_id)
            except Exception:
                log.exception("outbox.listener_failed")

    # --- timers and restart --------------------------------------------------------------------

    def _schedule(self, conversation_id: str, delay: float) -> None:
        if self._closed:
            return
        existing = self._timers.get(conversation_id)
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        if existing is not None and not existing.cancelled() and existing.when() <= when:
            return
        if existing is not None:
            existing.cancel()
        self._timers[conversation_id] = loop.call_at(when, self._fire, conversation_id)

    def _fire(self, conversation_id: str) -> None:
        self._timers.pop(conversation_id, None)
        # Supervised: a transient database error must not leave the message pending forever.
        self.tasks.spawn(f"flush {conversation_id}", lambda: self.flush(conversation_id), retry=True)

    async def resume(self) -> int:
        """At start-up (and then every `outbox_sweep_seconds`, see `start`): settle the sends
        whose lease expired (their process died during the provider call, see `_reconcile`),
        then send (or schedule) what is pending — also retries scheduled in a process that died."""
        now = utcnow()
        expired = (sendable(), Message.status == MessageStatus.SENDING,
                   or_(Message.lease_expires_at.is_(None), Message.lease_expires_at < now))
        async with self.db.session() as s:
            ids = (await s.scalars(select(Message.id).where(*expired))).all()
            if ids:
                # Taken over under a lease of this process: a peer sweeping now skips them.
                await s.execute(update(Message).where(Message.id.in_(ids), *expired).values(**self.lease())
                                .execution_options(synchronize_session=False))
        interrupted = await self._reconcile(ids) if ids else []
        async with self.db.session() as s:
            conversations = (
                await s.scalars(
                    select(Message.conversation_id)
                    .where(sendable(), Message.status == MessageStatus.PENDING)
                    .group_by(Message.conversation_id)
                )
            ).all()
        for conv_id, public_id in interrupted:
            await self._notify(conv_id, public_id)
        for conv_id in conversations:
            # Sends what is due and schedules the rest; a retry this process scheduled comes anyway.
            if conv_id not in self._timers:
                await self.flush(conv_id)
        if ids or conversations:
            log.info("outbox.resumed", conversations=len(conversations), reconciled=len(ids) - len(interrupted),
                     interrupted=len(interrupted))
        return len(conversations)

    async def _reconcile(self, ids: list[int]) -> list[tuple[str, str]]:
        """Settle interrupted sends this process took over: the provider is asked what it got
        (`Connector.sent_since`). Arrived -> `sent` with the provider's id; not arrived -> `pending`,
        sent again in order; no answer -> `unknown` (maybe delivered: never resent automatically,
        shown to the agent). Returns (conversation, message) of the `unknown` ones."""
        async with self.db.session() as s:
            rows = (await s.scalars(select(Message).where(Message.id.in_(ids), Message.lease_owner == self.owner,
                                                          Message.status == MessageStatus.SENDING)
                                    .order_by(Message.id))).all()
            addresses = {c.id: ChannelAddress.from_dict(c.address) for c in (await s.scalars(
                select(Conversation).where(Conversation.id.in_({m.conversation_id for m in rows})))).all()}
            for m in rows:
                s.expunge(m)
        taken: set[str] = set()  # provider ids given to a row in this pass
        unknown: list[tuple[str, str]] = []
        for m in rows:  # oldest first: of two interrupted sends of one text, the older gets the older id
            address = addresses[m.conversation_id]
            answered, sid = await self._arrived(address, m, taken)
            if answered:
                if sid is not None:
                    await self._record(m.id, {"status": MessageStatus.SENT, "provider_message_id": sid[:200],
                                              "error": None, "next_attempt_at": None})
                    log.info("outbox.reconciled", channel=address.channel, outcome="arrived")
                else:
                    await self._record(m.id, {"status": MessageStatus.PENDING, "next_attempt_at": None,
                                              "error": "the gateway stopped while sending this message and the "
                                              "provider did not have it; sent again"})
                    log.info("outbox.reconciled", channel=address.channel, outcome="resent")
                continue
            await self._record(m.id, {"status": MessageStatus.UNKNOWN,
                                      "error": "the gateway stopped while sending this message; "
                                      "it may not have been delivered and is not resent automatically"})
            unknown.append((m.conversation_id, m.public_id))
        return unknown

    async def _arrived(self, address: ChannelAddress, m: Message, taken: set[str]) -> tuple[bool, str | None]:
        """Did an earlier attempt to send `m` reach the provider? (False, None): it cannot say;
        (True, id): yes, under that id (one no stored message has, nor one in `taken`, which it
        is added to); (True, None): no."""
        found = await self._sent_since(address, m)
        if found is None:
            return False, None
        async with self.db.session() as s:
            known = set((await s.scalars(select(Message.provider_message_id).where(
                Message.channel == address.channel, Message.provider_message_id.in_(found)))).all())
        fresh = [sid for sid in reversed(found) if sid not in known and sid not in taken]
        if not fresh:
            return True, None
        taken.add(fresh[0])
        return True, fresh[0]

    async def _sent_since(self, address: ChannelAddress, m: Message) -> list[str] | None:
        connector = self._connector(address.channel)
        if connector is None:
            return None
        try:
            return await connector.sent_since(address, outbound_of(m), m.created_at - PROVIDER_CLOCK_SKEW)
        except Exception:  # a connector bug: the message stays `unknown`, never resent
            log.exception("outbox.reconcile_failed", channel=address.channel)
            return None

    def start(self) -> None:
        """Sweep now and then for work whose owner is gone (supervised, restarted on failure)."""

        async def sweep() -> None:
            while True:
                await asyncio.sleep(self.settings.outbox_sweep_seconds)  # a period, not synchronisation
                await self.resume()

        self._sweeper.spawn("sweep", sweep, retry=True)

    async def close(self) -> None:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await self._sweeper.close()
        await self.tasks.close()
