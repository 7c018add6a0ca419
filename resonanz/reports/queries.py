"""The reports, computed by SQL (SQLAlchemy Core) on PostgreSQL and SQLite.

Every report takes the same `Filters` (a UTC date range, channel, language, queue) and answers
named tables (`Table`: columns and rows), which the API sends as JSON or CSV. What each figure
counts, and which filters apply to it, is written beside it and in docs/reports.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, literal, or_, select, text, union_all
from sqlalchemy.sql.expression import ColumnElement

from handover.routing import _spans as opening_spans  # the queues' own rule, day by day
from resonanz.reports.sql import before_colon, bucket_epoch, day_text, percentiles, quarter_start, seconds_between, utc_day
from resonanz.reports.tasks import task_counters
from resonanz.store import Database
from resonanz.store.models import Agent, Conversation, Handover, Message, Queue
from resonanz.store.vocabulary import Author, Direction, HandoverStatus

NONE = "(none)"  # a row for rows without a queue, language, agent...
ALL = "(all)"


@dataclass(frozen=True)
class Filters:
    """[start, end) in UTC; the optional filters narrow conversations (channel, language) and
    handovers (queue)."""

    start: datetime
    end: datetime
    channel: str | None = None
    language: str | None = None
    queue: str | None = None  # a queue id

    @classmethod
    def days(cls, first: str, last: str, **kw: Any) -> Filters:
        """From the first to the last day (both counted, UTC)."""
        start = datetime.fromisoformat(first).replace(tzinfo=UTC)
        end = datetime.fromisoformat(last).replace(tzinfo=UTC) + timedelta(days=1)
        return cls(start, end, **kw)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows}


def _ratio(part: int | float, whole: int | float) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _in_range(col: Any, f: Filters) -> ColumnElement[bool]:
    return and_(col >= f.start, col < f.end)


def _conversation_filters(f: Filters) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if f.channel:
        out.append(Conversation.channel == f.channel)
    if f.language:
        out.append(Conversation.language == f.language)
    return out


def _handover_filters(f: Filters) -> list[ColumnElement[bool]]:
    out = [_in_range(Handover.created_at, f), *_conversation_filters(f)]
    if f.queue:
        out.append(Handover.queue_id == f.queue)
    return out


async def _rows(db: Database, query: Any) -> list[Any]:
    async with db.session() as s:
        if not db.is_sqlite:
            # PostgreSQL's JIT compiles these plans for seconds (their cost estimates are high)
            # to save milliseconds: measured on a year of history (bench/reports.py), it only loses.
            await s.execute(text("SET LOCAL jit = off"))
        return list((await s.execute(query)).all())


# --- containment ---------------------------------------------------------------------------------


async def containment(db: Database, f: Filters) -> dict[str, Table]:
    """Conversations started in the range, and how many the bot finished without a person (no
    handover at all), by channel and language. The queue filter does not apply."""
    handed = exists().where(Handover.conversation_id == Conversation.id)
    lang = func.coalesce(Conversation.language, NONE)
    q = (select(Conversation.channel, lang, func.count(), func.sum(case((handed, 1), else_=0)))
         .where(_in_range(Conversation.created_at, f), *_conversation_filters(f))
         .group_by(Conversation.channel, lang).order_by(Conversation.channel, lang))
    table = Table(["channel", "language", "conversations", "handed_over", "bot_only", "containment"])
    total = handed_total = 0
    for channel, language, n, handed_n in await _rows(db, q):
        handed_n = int(handed_n or 0)
        table.rows.append([channel, language, n, handed_n, n - handed_n, _ratio(n - handed_n, n)])
        total, handed_total = total + n, handed_total + handed_n
    table.rows.append([ALL, ALL, total, handed_total, total - handed_total, _ratio(total - handed_total, total)])
    return {"containment": table}


# --- handovers -------------------------------------------------------------------------------------


async def handovers(db: Database, f: Filters) -> dict[str, Table]:
    """Handovers opened in the range by reason and trigger (the trigger's kind: intent, pattern,
    sentiment, fallbacks, engine, preference...), and by queue and channel."""
    base = Handover.__table__.join(Conversation, Conversation.id == Handover.conversation_id)
    kind = before_colon(Handover.trigger)
    by_reason = (select(Handover.reason, kind, func.count()).select_from(base).where(*_handover_filters(f))
                 .group_by(Handover.reason, kind).order_by(func.count().desc(), Handover.reason, kind))
    qname = func.coalesce(Queue.name, NONE)
    by_queue = (select(qname, Conversation.channel, func.count())
                .select_from(base.outerjoin(Queue, Queue.id == Handover.queue_id)).where(*_handover_filters(f))
                .group_by(qname, Conversation.channel).order_by(qname, Conversation.channel))
    return {
        "by_reason": Table(["reason", "trigger", "handovers"], [list(r) for r in await _rows(db, by_reason)]),
        "by_queue": Table(["queue", "channel", "handovers"], [list(r) for r in await _rows(db, by_queue)]),
    }


# --- waiting, handling, business hours ---------------------------------------------------------------


async def waiting(db: Database, f: Filters) -> dict[str, Table]:
    """Per queue, for handovers opened in the range: the wait from the handover to the first agent
    reply (p50/p90, nearest rank), the handling time from acceptance to close (mean, p50/p90), how
    many were abandoned while waiting and how many offers to an agent timed out."""
    m = Message.__table__.alias("m")
    first_reply = (select(func.min(m.c.created_at))
                   .where(m.c.conversation_id == Handover.conversation_id, m.c.author == Author.AGENT,
                          m.c.direction == Direction.OUT, m.c.created_at >= Handover.created_at,
                          or_(Handover.closed_at.is_(None), m.c.created_at <= Handover.closed_at))
                   .correlate(Handover).scalar_subquery())
    qname = func.coalesce(Queue.name, NONE)
    handled = case((and_(Handover.accepted_at.is_not(None), Handover.closed_at.is_not(None)),
                    seconds_between(Handover.accepted_at, Handover.closed_at)))
    per = (select(qname.label("queue"), seconds_between(Handover.created_at, first_reply).label("wait"),
                  handled.label("handle"), Handover.status.label("status"),
                  func.coalesce(func.json_array_length(Handover.declined_by), 0).label("timed_out"))
           .select_from(Handover.__table__.join(Conversation, Conversation.id == Handover.conversation_id)
                        .outerjoin(Queue, Queue.id == Handover.queue_id))
           .where(*_handover_filters(f))).subquery("per")
    # One statement: `per` is a CTE used several times, so PostgreSQL computes it once. Each row is
    # (kind, queue, x, y, z): counts, sums and nearest-rank percentiles, per queue and for all.
    per_cte = per.element.cte("per_all")
    c = per_cte.c
    abandoned = func.sum(case((c.status == HandoverStatus.ABANDONED, 1), else_=0))
    parts: list[Any] = []
    for queue_col, grouped in ((c.queue, True), (literal(ALL), False)):
        for kind, x, y, z in (("count", func.count(), func.count(c.wait), func.count(c.handle)),
                              ("sums", func.sum(c.handle), abandoned, func.sum(c.timed_out))):
            part = select(literal(kind).label("kind"), queue_col.label("queue"), x.label("x"), y.label("y"), z.label("z"))
            parts.append(part.group_by(c.queue) if grouped else part)
        for value in ("wait", "handle"):
            parts.append(percentiles(per_cte, value, ["queue"] if grouped else [], (50, 90),
                                     label=None if grouped else ALL, kind=value))
    found = {(kind, queue): (x, y, z) for kind, queue, x, y, z in await _rows(db, union_all(*parts))}
    table = Table(["queue", "handovers", "answered", "wait_p50_s", "wait_p90_s", "handling_avg_s",
                   "handling_p50_s", "handling_p90_s", "abandoned", "offers_timed_out"])
    queues = sorted(q for kind, q in found if kind == "count" and q != ALL)
    for queue in [*queues, ALL]:
        n, answered, handled_n = found.get(("count", queue), (0, 0, 0))
        if not n:
            continue
        handle_sum, abandoned_n, timed_out = found[("sums", queue)]
        w, h = found.get(("wait", queue), (0, None, None)), found.get(("handle", queue), (0, None, None))
        handle_avg = float(handle_sum) / int(handled_n) if handled_n else None
        table.rows.append([queue, int(n), int(answered), _seconds(w[1]), _seconds(w[2]), _seconds(handle_avg),
                           _seconds(h[1]), _seconds(h[2]), int(abandoned_n or 0), int(timed_out or 0)])
    return {"waiting": table}


def open_at(hours: dict[str, Any]) -> Callable[[float], bool]:
    """`handover.routing.is_open` for many instants (seconds since 1970) of the same hours: the
    opening spans are worked out once per local day (a year is 35,000 quarter hours)."""
    if not hours or not hours.get("days"):
        return lambda _ts: True
    tz = ZoneInfo(hours.get("timezone", "Europe/Berlin"))
    spans: dict[date, list[tuple[time, time]]] = {}

    def check(ts: float) -> bool:
        local = datetime.fromtimestamp(ts, tz)
        day = local.date()
        if day not in spans:
            spans[day] = opening_spans(hours, local)
        now = local.time()
        return any(start <= now < end for start, end in spans[day])

    return check


async def business_hours(db: Database, f: Filters) -> dict[str, Table]:
    """Messages in the range (customer messages in, replies out) inside and outside each queue's
    business hours (judged per quarter hour; a queue without hours is always open). With a queue
    filter, that queue only."""
    bucket = quarter_start(Message.created_at)
    n_in = func.sum(case((Message.direction == Direction.IN, 1), else_=0))
    n_out = func.sum(case((Message.direction == Direction.OUT, 1), else_=0))
    q = select(bucket.label("b"), n_in.label("n_in"), n_out.label("n_out")).where(_in_range(Message.created_at, f))
    if f.channel:
        q = q.where(Message.channel == f.channel)
    if f.language:
        q = q.where(Message.conversation_id.in_(select(Conversation.id).where(Conversation.language == f.language)))
    grouped = q.group_by(bucket).subquery("quarters")
    counts = await _rows(db, select(bucket_epoch(grouped.c.b), grouped.c.n_in, grouped.c.n_out))
    queues = select(Queue.name, Queue.business_hours).order_by(Queue.name)
    if f.queue:
        queues = queues.where(Queue.id == f.queue)
    table = Table(["queue", "direction", "in_hours", "out_of_hours"])
    for name, hours in await _rows(db, queues):
        opened = open_at(hours or {})
        tally = {Direction.IN: [0, 0], Direction.OUT: [0, 0]}
        for ts, ins, outs in counts:
            at = 0 if opened(ts) else 1
            tally[Direction.IN][at] += int(ins or 0)
            tally[Direction.OUT][at] += int(outs or 0)
        for direction in (Direction.IN, Direction.OUT):
            table.rows.append([name, str(direction), *tally[direction]])
    return {"business_hours": table}


# --- CSAT ------------------------------------------------------------------------------------------


async def csat(db: Database, f: Filters) -> dict[str, Table]:
    """Ratings (1-5) of handovers opened in the range: the distribution, and the mean per agent,
    queue and reason."""
    base = (Handover.__table__.join(Conversation, Conversation.id == Handover.conversation_id)
            .outerjoin(Queue, Queue.id == Handover.queue_id).outerjoin(Agent, Agent.id == Handover.agent_id))
    where = [*_handover_filters(f), Handover.rating.is_not(None)]
    dist = dict(await _rows(db, select(Handover.rating, func.count()).select_from(base).where(*where).group_by(Handover.rating)))
    total = sum(dist.values())
    out = {"distribution": Table(["rating", "ratings", "share"],
                                 [[r, dist.get(r, 0), _ratio(dist.get(r, 0), total)] for r in range(1, 6)])}
    for name, key in (("by_agent", func.coalesce(Agent.display_name, NONE)), ("by_queue", func.coalesce(Queue.name, NONE)),
                      ("by_reason", Handover.reason)):
        q = (select(key, func.count(), func.avg(Handover.rating)).select_from(base).where(*where)
             .group_by(key).order_by(key))
        out[name] = Table([name[3:], "ratings", "average"],
                          [[k, n, round(float(avg), 2)] for k, n, avg in await _rows(db, q)])
    return out


# --- self-service ----------------------------------------------------------------------------------


async def self_service(db: Database, f: Filters) -> dict[str, Table]:
    """Tasks the bot finished in the range (counters registered by the bot, `resonanz.reports.tasks`),
    and where customers left a form: conversations started in the range with a form still open,
    by form and the slot it was asking for."""
    tasks = Table(["task", "label", "finished"])
    for counter in task_counters():
        t = counter.rows().subquery("t")
        q = (select(func.count()).select_from(t.join(Conversation, Conversation.id == t.c.conversation_id))
             .where(_in_range(t.c.at, f), *_conversation_filters(f)))
        tasks.rows.append([counter.name, counter.label, (await _rows(db, q))[0][0]])
    # The form still open in the conversation (the engine's active loop after its last turn), and
    # the slot its last customer message was answering (one index lookup each).
    last_slot = (select(Message.parse_data[("slots", "requested_slot")].as_string())
                 .where(Message.conversation_id == Conversation.id, Message.direction == Direction.IN)
                 .order_by(Message.id.desc()).limit(1).correlate(Conversation).scalar_subquery())
    slot = func.coalesce(last_slot, NONE).label("slot")
    left = (select(Conversation.active_loop.label("form"), slot)
            .where(_in_range(Conversation.created_at, f), *_conversation_filters(f), Conversation.active_loop.is_not(None))
            .subquery("left_form"))
    q = (select(left.c.form, left.c.slot, func.count()).group_by(left.c.form, left.c.slot)
         .order_by(left.c.form, func.count().desc(), left.c.slot))
    dropouts = Table(["form", "slot", "conversations"], [list(r) for r in await _rows(db, q)])
    return {"tasks": tasks, "form_dropouts": dropouts}


# --- intents ----------------------------------------------------------------------------------------


async def intents(db: Database, f: Filters, *, fallback_intents: tuple[str, ...], fallback_confidence: float,
                  top: int = 20) -> dict[str, Table]:
    """Customer messages in the range the engine classified: the top intents, and per UTC day how
    many were not understood (a fallback intent, or a confidence below `fallback_confidence`:
    the same rule as the handover triggers)."""
    intent, confidence = Message.intent, Message.intent_confidence  # (set beside the parse data)
    where = [_in_range(Message.created_at, f), intent.is_not(None)]  # only inbound messages have one
    if f.channel:
        where.append(Message.channel == f.channel)
    if f.language:
        where.append(Message.conversation_id.in_(select(Conversation.id).where(Conversation.language == f.language)))
    # One pass over the messages (an index-only scan of ix_messages_intents): counts by day, intent
    # and whether it was understood; the two tables are sums of these rows.
    inner = (select(utc_day(Message.created_at).label("day"), intent.label("intent"), confidence.label("confidence"))
             .where(*where).subquery("parsed"))
    low = case((or_(inner.c.intent.in_(fallback_intents), func.coalesce(inner.c.confidence, 0.0) < fallback_confidence), 1),
               else_=0).label("missed")
    by_day_intent = await _rows(db, select(inner.c.day, inner.c.intent, low, func.count()).group_by(inner.c.day, inner.c.intent, low))
    per_intent: dict[str, int] = defaultdict(int)
    per_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for day, i, missed_flag, n in by_day_intent:
        d = day_text(day)
        per_intent[i] += n
        per_day[d][0] += n
        per_day[d][1] += n if missed_flag else 0
    total = sum(per_intent.values())
    ranked = sorted(per_intent.items(), key=lambda kv: (-kv[1], kv[0]))
    top_table = Table(["intent", "messages", "share"], [[i, n, _ratio(n, total)] for i, n in ranked[:top]])
    daily = Table(["day", "messages", "not_understood", "rate"],
                  [[d, n, k, _ratio(k, n)] for d, (n, k) in sorted(per_day.items())])
    return {"top_intents": top_table, "not_understood": daily}


REPORTS = ("containment", "handovers", "waiting", "business_hours", "csat", "self_service", "intents")
