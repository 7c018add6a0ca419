"""Several Rasa engines behind the one `turn(...)` call the dispatcher makes.

A conversation's engine sender id is routed by a consistent hash (a ring with virtual nodes, keyed
by engine URL, so every gateway listing the same engines routes alike). Engines that are down or
still loading are skipped: their senders go to the next engine on the ring and come back when the
engine is up again; every other sender stays where it is. A turn whose engine is unreachable (it
died before or during the call) is retried once on the next engine before the caller sees the
error. The retry carries the same message id: with a shared tracker store the first engine may
have stored the turn before it died, and the next one then answers what it recorded instead of
storing the message twice (bot/rasa_plugin/channel.py).
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import structlog

from bot.engine import EngineError, EngineTurn, RasaEngine

log = structlog.get_logger(__name__)

VIRTUAL_NODES = 64
# A busy engine answers its status late (requests queue behind running turns): only this many
# unanswered probes in a row take an engine that is up out of the ring; a refusal does at once.
SILENT_PROBES_DOWN = 5


def _point(key: str) -> int:
    # A stable hash (not Python's salted hash()): every process must place a key alike.
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing: each node owns `vnodes` points on a ring; a key belongs to the first
    node clockwise from its own point. Removing a node moves only the keys it owned."""

    def __init__(self, nodes: Sequence[str], vnodes: int = VIRTUAL_NODES) -> None:
        if not nodes:
            raise ValueError("a hash ring needs at least one node")
        self.nodes = tuple(dict.fromkeys(nodes))
        ring = sorted((_point(f"{node}#{i}"), node) for node in self.nodes for i in range(vnodes))
        self._points = [p for p, _ in ring]
        self._owners = [n for _, n in ring]

    def preference(self, key: str) -> list[str]:
        """Every node once, in the order `key` tries them: its owner first, then clockwise."""
        start = bisect.bisect(self._points, _point(key))
        order: list[str] = []
        for i in range(len(self._owners)):
            node = self._owners[(start + i) % len(self._owners)]
            if node not in order:
                order.append(node)
                if len(order) == len(self.nodes):
                    break
        return order


class EnginePool:
    """Routes each turn to one of several engines; the same calls as `RasaEngine`."""

    def __init__(
        self, urls: Sequence[str], token: str, *, timeout: float, session: aiohttp.ClientSession,
        probe_timeout: float = 2.0,
    ) -> None:
        self.session = session  # shared by the engines; owned by the caller
        self.engines = {
            e.base_url: e for e in (RasaEngine(u, token, timeout=timeout, session=session) for u in urls)
        }
        self.ring = HashRing(list(self.engines))
        self.probe_timeout = probe_timeout
        self._up: set[str] = set()
        self._silent: dict[str, int] = dict.fromkeys(self.engines, 0)

    @property
    def base_url(self) -> str:
        return ", ".join(self.engines)

    @property
    def total(self) -> int:
        return len(self.engines)

    @property
    def up(self) -> int:
        return len(self._up)

    def states(self) -> dict[str, bool]:
        """Every engine URL and whether the probes see it up (for /metrics)."""
        return {url: url in self._up for url in self.engines}

    def route(self, sender_id: str, exclude: str | None = None) -> RasaEngine | None:
        """The engine for `sender_id`: the first on its ring order that is up (not `exclude`)."""
        for url in self.ring.preference(sender_id):
            if url in self._up and url != exclude:
                return self.engines[url]
        return None

    async def turn(
        self,
        sender_id: str,
        text: str,
        *,
        set_slots: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        message_id: str | None = None,
    ) -> EngineTurn:
        """One customer message, as `RasaEngine.turn`. An engine that cannot be reached is marked
        down and the turn goes once to the next engine that is up."""
        # None up (all loading or dead): try the owner, so the caller gets the engine's own error.
        engine = self.route(sender_id) or self.engines[self.ring.preference(sender_id)[0]]
        try:
            return await engine.turn(sender_id, text, set_slots=set_slots, metadata=metadata, message_id=message_id)
        except EngineError as exc:
            if exc.reason != "engine_unreachable":
                raise  # slow or wrong answers are not a dead engine; a retry could run it twice
            self._up.discard(engine.base_url)
            other = self.route(sender_id, exclude=engine.base_url)
            if other is None:
                raise
            log.warning("engine.retry_elsewhere", failed=engine.base_url, engine=other.base_url)
            return await other.turn(sender_id, text, set_slots=set_slots, metadata=metadata,
                                    message_id=message_id)

    async def refresh(self) -> int:
        """Probe every engine; returns how many are up (ready, with a model loaded)."""
        urls = list(self.engines)
        answers = await asyncio.gather(*(self.engines[u].probe(self.probe_timeout) for u in urls))
        for url, ok in zip(urls, answers, strict=True):
            self._silent[url] = self._silent[url] + 1 if ok is None else 0
            if ok is None and self._silent[url] < SILENT_PROBES_DOWN:
                continue  # busy, not gone: it keeps its conversations
            if ok and url not in self._up:
                log.info("engine.up", engine=url)
                self._up.add(url)
            elif not ok and url in self._up:
                log.warning("engine.down", engine=url)
                self._up.discard(url)
        return len(self._up)

    async def is_ready(self) -> bool:
        """True while at least one engine is up."""
        return await self.refresh() > 0

    async def watch(self, interval: float) -> None:
        """Keep the up/down view current, so that a returning engine gets its senders back."""
        while True:
            await self.refresh()
            await asyncio.sleep(interval)  # polling external processes: there is no event to wait on
