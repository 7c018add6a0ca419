"""Where rate limits count (the `limits` package, moving windows): in this process, or in Redis
when RESONANZ_REDIS_URL is set, so that every gateway process counts together."""

from __future__ import annotations

from typing import Any

from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from resonanz.settings import Settings


def moving_window(settings: Settings, name: str) -> tuple[MovingWindowRateLimiter, Any]:
    """A moving-window limiter and its storage, keyed under `<redis_channel>:<name>` in Redis.
    Storage errors are wrapped (limits' StorageError), so callers can fail closed."""
    storage: Any
    if settings.redis_url:
        url = settings.redis_url
        url = "async+redis+" + url if url.startswith("unix://") else "async+" + url
        storage = RedisStorage(url, implementation="redispy", wrap_exceptions=True,
                               key_prefix=f"{settings.redis_channel}:{name}")
    else:
        storage = MemoryStorage(wrap_exceptions=True)
    return MovingWindowRateLimiter(storage), storage
