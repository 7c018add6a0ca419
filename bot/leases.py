"""Leases on inbound messages: which process answers a stored (`received`) message.

A message is stored already leased by the process that stored it; while its turn waits (behind
earlier turns of its conversation) or runs (a long engine wait), a heartbeat renews the lease
every third of `turn_lease_seconds`. Another process claims a `received` message only when its
lease ran out (its process died or hung) or it has none and is older than a lease; the process
itself also claims its own leased messages that no turn of it holds (a turn that failed). On
PostgreSQL the claim skips rows another claimer has locked (`FOR UPDATE SKIP LOCKED`), so two
claimers get disjoint sets without waiting for each other; SQLite has one writer at a time.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import and_, bindparam, or_, select, update

from resonanz.settings import Settings
from resonanz.store import Database
from resonanz.store.models import Message, utcnow
from resonanz.store.vocabulary import Direction, MessageStatus
from resonanz.supervisor import TaskSupervisor

log = structlog.get_logger(__name__)

# At most this many messages per claim; the periodic sweep takes the rest.
CLAIM_BATCH = 200


# Lease one message if it waits unleased or its lease ran out (`claim_one`); built once.
_CLAIM_ONE = (
    update(Message.__table__)
    .where(Message.__table__.c.id == bindparam("pk"), Message.__table__.c.direction == Direction.IN,
           Message.__table__.c.status == MessageStatus.RECEIVED,
           or_(Message.__table__.c.lease_owner.is_(None), Message.__table__.c.lease_expires_at < bindparam("now")))
    .returning(Message.__table__.c.id, Message.__table__.c.conversation_id, Message.__table__.c.public_id)
)


class InboundLeases:
    """The inbound messages one process holds, kept leased while their turns wait or run."""

    def __init__(self, *, db: Database, settings: Settings, owner: str) -> None:
        self.db = db
        self.owner = owner
        self.seconds = settings.turn_lease_seconds
        # A message stored unleased (handed to turn processes, `Settings.process_role`) is
        # claimed by a sweep once this old: its hand-off notice may have been lost.
        self.unleased_after = (settings.turn_sweep_seconds if settings.process_role == "turns"
                               else settings.turn_lease_seconds)
        self._held: set[int] = set()
        self._emptied = asyncio.Event()
        self._heartbeat = TaskSupervisor("turn leases")
        self._beating: asyncio.Task[Any] | None = None

    def columns(self) -> dict[str, Any]:
        """The columns that mark a message as leased by this process, from now on."""
        return {"lease_owner": self.owner, "lease_expires_at": utcnow() + timedelta(seconds=self.seconds)}

    @staticmethod
    def released() -> dict[str, Any]:
        return {"lease_owner": None, "lease_expires_at": None}

    def hold(self, pk: int) -> None:
        """A turn of this process will answer message `pk`: keep its lease alive until `release`."""
        self._held.add(pk)
        self._emptied.clear()
        if self._beating is None or self._beating.done():
            self._beating = self._heartbeat.spawn("renew", self._beat, retry=True)

    def release(self, pk: int) -> None:
        self._held.discard(pk)
        if not self._held:
            self._emptied.set()

    async def _beat(self) -> None:
        while self._held:
            try:
                await asyncio.wait_for(self._emptied.wait(), self.seconds / 3)  # a period, or nothing held
            except TimeoutError:
                await self.renew()

    async def renew(self) -> None:
        held = list(self._held)
        if not held:
            return
        async with self.db.session() as s:
            await s.execute(
                update(Message)
                .where(Message.id.in_(held), Message.lease_owner == self.owner,
                       Message.status == MessageStatus.RECEIVED)
                .values(lease_expires_at=utcnow() + timedelta(seconds=self.seconds))
                .execution_options(synchronize_session=False)
            )

    async def claim(self) -> list[tuple[int, str, str]]:
        """Lease `received` messages nobody answers, oldest first: (pk, conversation id, public id)."""
        now = utcnow()
        held = list(self._held)
        claimable = and_(
            Message.direction == Direction.IN,
            Message.status == MessageStatus.RECEIVED,
            or_(
                Message.lease_expires_at < now,
                and_(Message.lease_owner.is_(None), Message.created_at < now - timedelta(seconds=self.unleased_after)),
                and_(Message.lease_owner == self.owner, Message.id.not_in(held)),
            ),
        )
        async with self.db.session() as s:
            candidates = (
                await s.scalars(
                    select(Message.id).where(claimable).order_by(Message.id).limit(CLAIM_BATCH)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not candidates:
                return []
            # Conditional: on SQLite (no row locks) a claimer that lost the race updates nothing.
            claimed = (
                await s.execute(
                    update(Message).where(Message.id.in_(candidates), claimable)
                    .values(**self.columns())
                    .returning(Message.id, Message.conversation_id, Message.public_id)
                    .execution_options(synchronize_session=False)
                )
            ).all()
        return sorted((pk, conversation_id, public_id) for pk, conversation_id, public_id in claimed)

    async def claim_one(self, pk: int) -> tuple[int, str, str] | None:
        """Lease message `pk` if it waits unleased (or its lease ran out): (pk, conversation id,
        public id), or None when another process was first or it was answered already. Several
        turn processes hear of the same message; the row's lock lets exactly one of them win. One
        statement, committing by itself (`Database.statements`: no BEGIN and COMMIT round trips)."""
        async with self.db.statements() as c:
            row = (await c.execute(_CLAIM_ONE, {"pk": pk, "now": utcnow(), **self.columns()})).first()
        return (row[0], row[1], row[2]) if row is not None else None

    async def close(self) -> None:
        """Stop renewing, and hand back every message this process still holds (a graceful stop
        cancels its unfinished turns): the next process or a live peer takes them at once instead
        of after the lease."""
        await self._heartbeat.close()
        try:
            async with self.db.session() as s:
                handed_back = (await s.execute(
                    update(Message)
                    .where(Message.direction == Direction.IN, Message.status == MessageStatus.RECEIVED,
                           Message.lease_owner == self.owner)
                    .values(lease_owner=None, lease_expires_at=utcnow())
                    .execution_options(synchronize_session=False)
                )).rowcount
        except Exception:  # the database is gone too: the leases simply run out
            log.warning("leases.not_handed_back", exc_info=True)
            return
        if handed_back:
            log.info("leases.handed_back", inbound=handed_back)
