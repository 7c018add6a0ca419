"""Rasa's RedisLockStore, safe across engine processes. Runs INSIDE the Rasa 3.6 process.

Rasa 3.6 reads a conversation's ticket lock from Redis, changes it and writes it back in separate
calls, so two engines taking a ticket for one sender at the same moment can both get the same
ticket and process at once (the atomic variant is only in Rasa Pro; RasaHQ/rasa#11256). This
subclass runs each of those read-modify-write steps under a short Redis mutex (redis-py's Lock);
the ticket queue itself stays Rasa's.

Rasa gives every ticket a fixed lifetime of 60 s: an engine killed mid-turn leaves its ticket
behind, and the conversation's next turn on another engine waits for it far beyond the gateway's
engine timeout. Here a ticket is a lease instead: `RESONANZ_ENGINE_LOCK_SECONDS` (5) long and
renewed every third of that while its engine waits or works, so a live engine keeps it for as
long as its turn runs and a dead engine's ticket is gone within one lease.

    lock_store: {type: bot.rasa_plugin.lock_store.AtomicRedisLockStore, url: host, port: 6379, ...}
"""

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncGenerator, Optional, Text

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

# A step is a few Redis round trips; a holder that died releases the mutex after this long.
MUTEX_SECONDS = 5.0
# A ticket's lease; renewed every third of it while its engine lives.
LEASE_SECONDS = float(os.environ.get("RESONANZ_ENGINE_LOCK_SECONDS") or 5.0)


class AtomicRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **kwargs: Any) -> None:
        if endpoint_config is not None:
            kwargs = {"host": endpoint_config.url, **endpoint_config.kwargs, **kwargs}
        super().__init__(**kwargs)

    def _mutex(self, conversation_id: Text) -> Any:
        return self.red.lock(
            self.key_prefix + conversation_id + ":mutex", timeout=MUTEX_SECONDS, blocking_timeout=MUTEX_SECONDS
        )

    def issue_ticket(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME) -> int:
        with self._mutex(conversation_id):
            return super().issue_ticket(conversation_id, lock_lifetime)

    def update_lock(self, conversation_id: Text) -> None:
        with self._mutex(conversation_id):
            super().update_lock(conversation_id)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        with self._mutex(conversation_id):
            super().cleanup(conversation_id, ticket_number)

    @asynccontextmanager
    async def lock(
        self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME, wait_time_in_seconds: float = 1
    ) -> AsyncGenerator[TicketLock, None]:
        """Rasa's `lock()`, with a leased ticket (see the module docstring)."""
        ticket = self.issue_ticket(conversation_id, LEASE_SECONDS)
        renewer = asyncio.ensure_future(self._renew(conversation_id, ticket))
        try:
            # Wait no longer between attempts than a fraction of a lease: a dead holder's ticket
            # is gone after one lease, and the next turn should not sleep past that.
            yield await self._acquire_lock(conversation_id, ticket, min(wait_time_in_seconds, LEASE_SECONDS / 10))
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)
            self.cleanup(conversation_id, ticket)

    async def _renew(self, conversation_id: Text, ticket: int) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            try:
                self.extend(conversation_id, ticket)
            except Exception:  # noqa: BLE001 - Redis away for a moment: try again next round
                logger.warning("Could not renew the lock ticket of '%s'.", conversation_id, exc_info=True)

    def extend(self, conversation_id: Text, ticket_number: int) -> None:
        """Push the ticket's expiry one lease ahead."""
        with self._mutex(conversation_id):
            lock = self.get_lock(conversation_id)
            if lock is None:
                return
            for ticket in lock.tickets:
                if ticket.number == ticket_number:
                    ticket.expires = time.time() + LEASE_SECONDS
            self.save_lock(lock)
