"""Prometheus metrics of one gateway process, served at /metrics (docs/operations.md, "Metrics").

Two kinds of figures:

- **This process's counters and histograms** (messages in and out, turn and relay latency, outbox
  failures, refused webhooks): each gateway process counts only what it did itself. With several
  processes, sum them in PromQL (`sum without (instance) (...)`).
- **Gauges read from the database at scrape time** (queues, agents, outbox and inbound backlog)
  and from this process's engine probes (engine health): one cheap query round per scrape, run
  by the handler before it renders, so they are never stale. Every process reports the same
  database figures; aggregate them with `max`, not `sum`.

Access: with `RESONANZ_METRICS_TOKEN` set, a scrape needs `Authorization: Bearer <token>` from
anywhere. Without it, only a loopback peer that came through no proxy (no forwarding header) may
scrape; everything else gets 403. A reverse proxy on the same host would otherwise make every
outside request look local.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import func, select

from resonanz.store import Database
from resonanz.store.models import Agent, Handover, Message, Queue, utcnow
from resonanz.store.vocabulary import AgentStatus, Direction, HandoverStatus, MessageStatus

if TYPE_CHECKING:
    from bot.engine_pool import EnginePool

log = structlog.get_logger(__name__)

# Seconds; a turn is mostly one engine call (p50 ~10-250 ms), a slow one waits for the timeout.
TURN_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Outbound statuses still waiting or needing a person's look.
OUTBOX_STATUSES = (MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.FAILED, MessageStatus.UNKNOWN)
# Requests refused for a missing or wrong signature, secret or token.
REFUSED = frozenset({401, 403})
NO_QUEUE = "none"
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


class Metrics:
    """The metrics of one gateway (its own registry: several apps in one test process never mix)."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.messages_in = Counter(
            "resonanz_messages_in", "Customer messages stored (duplicates not counted), by channel",
            ["channel"], registry=r)
        self.messages_out = Counter(
            "resonanz_messages_out", "Outbound messages handed to the channel's delivery (one per provider "
            "call), by channel and author (bot, agent, system)", ["channel", "author"], registry=r)
        self.turn_seconds = Histogram(
            "resonanz_turn_seconds", "One turn of a stored customer message: waiting behind earlier turns of "
            "its conversation, the handlers, the engine call, storing the replies and handing them to the "
            "channel's delivery", ["channel"], buckets=TURN_BUCKETS, registry=r)
        self.relay_seconds = Histogram(
            "resonanz_relay_seconds", "Relay between a customer and the agent who owns the conversation: "
            "to_agent = customer message stored -> event handed to the consoles; to_customer = agent "
            "reply received -> delivered to the channel (provider accepted, pushed, or stored for REST)",
            ["direction", "channel"], buckets=RELAY_BUCKETS, registry=r)
        self.outbox_failed = Counter(
            "resonanz_outbox_failed", "Outbound messages that failed for good in this process, by channel",
            ["channel"], registry=r)
        self.outbox_retries = Counter(
            "resonanz_outbox_retries", "Provider sends that failed transiently and were scheduled again",
            ["channel"], registry=r)
        self.webhook_refused = Counter(
            "resonanz_webhook_verification_failures", "Webhook requests refused for a missing or wrong "
            "signature, secret token or bearer token (401/403), by channel", ["channel", "status"], registry=r)
        self.stepup_verifications = Counter(
            "resonanz_stepup_verifications", "Step-up verification attempts by outcome: verified, failed "
            "(wrong factor or unknown customer number), locked (too many failures: a person is offered)",
            ["outcome"], registry=r)
        # Read at scrape time (refresh).
        self.queue_waiting = Gauge(
            "resonanz_queue_waiting", "Handovers waiting for an agent (waiting or offered), by queue",
            ["queue"], registry=r)
        self.queue_oldest = Gauge(
            "resonanz_queue_oldest_wait_seconds", "Age of the oldest handover waiting in the queue (0: none)",
            ["queue"], registry=r)
        self.agents = Gauge("resonanz_agents", "Active agents by status (online, away, offline)", ["status"],
                            registry=r)
        self.outbox = Gauge("resonanz_outbox_messages", "Outbound messages by status: pending (waiting or "
                            "waiting for a retry), sending, failed, unknown (all processes)", ["status"], registry=r)
        self.outbox_oldest = Gauge("resonanz_outbox_oldest_pending_seconds",
                                   "Age of the oldest pending outbound message (0: none)", registry=r)
        self.inbound_waiting = Gauge("resonanz_inbound_unanswered",
                                     "Customer messages stored but not yet answered (status received)", registry=r)
        self.inbound_oldest = Gauge("resonanz_inbound_oldest_unanswered_seconds",
                                    "Age of the oldest unanswered customer message (0: none)", registry=r)
        self.database_up = Gauge("resonanz_database_up", "1 when the scrape's database queries succeeded",
                                 registry=r)
        self.engine_up = Gauge("resonanz_engine_up", "1 when this process's probes see the engine up (model "
                               "loaded), by engine URL", ["engine"], registry=r)
        ProcessCollector(registry=r)

    # --- observations (called by the pipeline) --------------------------------------------------

    def message_in(self, channel: str) -> None:
        self.messages_in.labels(channel).inc()

    def delivered(self, channel: str, authors: Iterable[str]) -> None:
        for author in authors:
            self.messages_out.labels(channel, author).inc()

    def stepup(self, outcome: str) -> None:
        self.stepup_verifications.labels(str(outcome)).inc()

    def turn(self, channel: str, started: float) -> None:
        """A turn that began at `started` (time.perf_counter()) ended now."""
        self.turn_seconds.labels(channel).observe(time.perf_counter() - started)

    def relay(self, direction: str, channel: str, started: float) -> None:
        self.relay_seconds.labels(direction, channel).observe(time.perf_counter() - started)

    # --- scrape -------------------------------------------------------------------------------

    async def refresh(self, db: Database, engines: EnginePool | None) -> None:
        """Read the gauges that describe shared state (one short session; the scrape still
        answers, with `resonanz_database_up 0`, when the database does not)."""
        if engines is not None:
            for url, up in engines.states().items():
                self.engine_up.labels(url).set(1 if up else 0)
        try:
            figures = await _read_database(db)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database does
            log.warning("metrics.database_failed", exc_info=True)
            self.database_up.set(0)
            return
        self.database_up.set(1)
        # Set after every query has returned: a scrape never sees half-updated label sets.
        for gauge, values in ((self.queue_waiting, figures.queue_waiting), (self.queue_oldest, figures.queue_oldest),
                              (self.agents, figures.agents), (self.outbox, figures.outbox)):
            gauge.clear()
            for label, value in values.items():
                gauge.labels(label).set(value)
        self.outbox_oldest.set(figures.outbox_oldest)
        self.inbound_waiting.set(figures.inbound_waiting)
        self.inbound_oldest.set(figures.inbound_oldest)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # --- HTTP ---------------------------------------------------------------------------------

    def middleware(self, channels: Collection[str]) -> Middleware:
        """Counts webhook requests a connector refused (401/403) by channel: /webhooks/<channel>/...
        and the web chat's socket (refused origin). Outermost, so it sees the final status."""

        def channel_of(path: str) -> str | None:
            if path == "/webchat/ws":
                return "webchat"
            parts = path.split("/", 3)
            if len(parts) >= 3 and parts[1] == "webhooks" and parts[2] in channels:
                return parts[2]
            return None

        @web.middleware
        async def count_refusals(request: web.Request, handler: web.Handler) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                self._refused(channel_of(request.path), exc.status)
                raise
            self._refused(channel_of(request.path), response.status)
            return response

        return count_refusals

    def _refused(self, channel: str | None, status: int) -> None:
        if channel is not None and status in REFUSED:
            self.webhook_refused.labels(channel, str(status)).inc()

    def routes(self, db: Database, engines: EnginePool | None, token: str | None) -> list[web.RouteDef]:
        async def scrape(request: web.Request) -> web.StreamResponse:
            refused = access_refused(request, token)
            if refused is not None:
                return refused
            await self.refresh(db, engines)
            return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

        return [web.get("/metrics", scrape)]


def access_refused(request: web.Request, token: str | None) -> web.Response | None:
    """None when `request` may read /metrics, else the refusal (fail closed: see the module doc)."""
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return web.json_response({"error": "missing or wrong bearer token (RESONANZ_METRICS_TOKEN)"}, status=401,
                                 headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if _loopback(request.remote) and not any(h in request.headers for h in FORWARDING_HEADERS):
        return None
    return web.json_response(
        {"error": "/metrics answers only loopback scrapes unless RESONANZ_METRICS_TOKEN is set"}, status=403)


def _loopback(peer: str | None) -> bool:
    try:
        addr = ipaddress.ip_address(peer or "")
    except ValueError:
        return False  # a Unix socket or an unknown peer: not provably local
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


class _Figures:
    def __init__(self) -> None:
        self.queue_waiting: dict[str, float] = {}
        self.queue_oldest: dict[str, float] = {}
        self.agents: dict[str, float] = dict.fromkeys(AgentStatus, 0)
        self.outbox: dict[str, float] = dict.fromkeys(OUTBOX_STATUSES, 0)
        self.outbox_oldest = 0.0
        self.inbound_waiting = 0.0
        self.inbound_oldest = 0.0


async def _read_database(db: Database) -> _Figures:
    """Four grouped queries, each on an index (handovers by status and queue, messages by
    direction and status)."""
    now = utcnow()
    out = _Figures()

    def age(oldest: object) -> float:
        return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0  # type: ignore[operator]

    async with db.session() as s:
        names = dict((await s.execute(select(Queue.id, Queue.name))).all())
        out.queue_waiting = {name: 0 for name in names.values()}
        out.queue_oldest = {name: 0.0 for name in names.values()}
        for queue_id, count, oldest in (await s.execute(
            select(Handover.queue_id, func.count(), func.min(Handover.created_at))
            .where(Handover.status.in_(HandoverStatus.queued())).group_by(Handover.queue_id)
        )).all():
            name = names.get(queue_id, NO_QUEUE) if queue_id is not None else NO_QUEUE
            out.queue_waiting[name] = out.queue_waiting.get(name, 0) + count
            out.queue_oldest[name] = max(out.queue_oldest.get(name, 0.0), age(oldest))
        for status, count in (await s.execute(
            select(Agent.status, func.count()).where(Agent.active.is_(True)).group_by(Agent.status)
        )).all():
            out.agents[status] = count
        for direction, status, count, oldest in (await s.execute(
            select(Message.direction, Message.status, func.count(), func.min(Message.created_at))
            .where(((Message.direction == Direction.OUT) & Message.status.in_(OUTBOX_STATUSES))
                   | ((Message.direction == Direction.IN) & (Message.status == MessageStatus.RECEIVED)))
            .group_by(Message.direction, Message.status)
        )).all():
            if direction == Direction.IN:
                out.inbound_waiting, out.inbound_oldest = count, age(oldest)
            else:
                out.outbox[status] = count
                if status == MessageStatus.PENDING:
                    out.outbox_oldest = age(oldest)
    return out
