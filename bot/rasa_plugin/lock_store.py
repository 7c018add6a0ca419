"""Rasa's RedisLockStore, safe across engine processes. Runs INSIDE the Rasa 3.6 process.

Rasa 3.6 reads a conversation's ticket lock from Redis, changes it and writes it back in separate
calls, so two engines taking a ticket for one sender at the same moment can both get the same
ticket and process at once (the atomic variant is only in Rasa Pro; RasaHQ/rasa#11256). This
subclass runs each of those read-modify-write steps under a short Redis mutex (redis-py's Lock);
the ticket queue itself stays Rasa's.

    lock_store: {type: bot.rasa_plugin.lock_store.AtomicRedisLockStore, url: host, port: 6379, ...}
"""

from typing import Any, Optional, Text

from rasa.core.lock_store import LOCK_LIFETIME, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

# A step is a few Redis round trips; a holder that died releases the mutex after this long.
MUTEX_SECONDS = 5.0


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
