"""The reports over HTTP: JSON under /api/v1/reports/<report>, CSV of any of its tables with
`?format=csv&table=<name>`, and the reports page of the console (/console/reports). Admins and
supervisors only."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from handover.auth import require
from handover.console import HEADERS, STATIC
from resonanz.errors import Invalid, NotFound
from resonanz.keys import DB, SETTINGS
from resonanz.reports import queries
from resonanz.reports.queries import Filters, Table
from resonanz.store.models import Conversation, Queue, utcnow
from resonanz.store.vocabulary import AgentRole

VIEWERS = (AgentRole.ADMIN, AgentRole.SUPERVISOR)
MAX_DAYS = 400
DEFAULT_DAYS = 30
_SIMPLE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_QUEUE_ID = re.compile(r"^[0-9a-f]{32}$")
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")  # fromisoformat alone takes 20240101 and 2024-W01-1 too
_TABLE = re.compile(r"^[a-z_]{0,64}$")
PARAMS = {"from", "to", "channel", "language", "queue", "format", "table"}


def parse_filters(query: Any, today: date) -> Filters:
    unknown = set(query) - PARAMS
    if unknown:
        raise Invalid(f"unknown parameter: {sorted(unknown)[0]}")
    for key in query:
        if len(query.getall(key)) > 1:
            raise Invalid(f"{key}: give this parameter once")
    for key in ("from", "to"):
        if key in query and not _DAY.match(query[key]):
            raise Invalid("from and to are days: YYYY-MM-DD")
    if not _TABLE.match(query.get("table", "")):
        raise Invalid("table: not a table name")
    try:
        last = date.fromisoformat(query["to"]) if "to" in query else today
        first = date.fromisoformat(query["from"]) if "from" in query else last - timedelta(days=DEFAULT_DAYS - 1)
        last + timedelta(days=1)  # the range ends the next midnight
    except ValueError:
        raise Invalid("from and to are days: YYYY-MM-DD") from None
    except OverflowError:
        raise Invalid("from and to: days between 0001-01-01 and 9999-12-30") from None
    if first > last:
        raise Invalid("from is after to")
    if (last - first).days >= MAX_DAYS:
        raise Invalid(f"at most {MAX_DAYS} days at once")
    extra: dict[str, str | None] = {}
    for key in ("channel", "language"):
        value = query.get(key) or None
        if value is not None and not _SIMPLE.match(value):
            raise Invalid(f"{key}: not a valid value")
        extra[key] = value
    queue = query.get("queue") or None
    if queue is not None and not _QUEUE_ID.match(queue):
        raise Invalid("queue: a queue id")
    return Filters.days(first.isoformat(), last.isoformat(), queue=queue, **extra)


async def run_report(app: web.Application, name: str, f: Filters) -> dict[str, Table]:
    db = app[DB]
    if name == "intents":
        s = app[SETTINGS]
        return await queries.intents(db, f, fallback_intents=tuple(s.fallback_intents),
                                     fallback_confidence=s.fallback_confidence)
    if name not in queries.REPORTS:
        raise NotFound("no such report")
    result: dict[str, Table] = await getattr(queries, name)(db, f)
    return result


def _csv_cell(value: Any) -> Any:
    # A spreadsheet runs a cell starting with = + - @ as a formula: such text is quoted with '.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue()


@require(*VIEWERS)
async def report_handler(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in queries.REPORTS:
        raise NotFound("no such report")
    f = parse_filters(request.query, utcnow().date())
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise Invalid("format: json or csv")
    tables = await run_report(request.app, name, f)
    if fmt == "csv":
        table_name = request.query.get("table") or next(iter(tables))
        if table_name not in tables:
            raise NotFound(f"no table {table_name!r} in report {name}; tables: {', '.join(tables)}")
        return web.Response(
            text=to_csv(tables[table_name]), content_type="text/csv", charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-{table_name}-{f.start:%Y%m%d}-{(f.end - timedelta(days=1)):%Y%m%d}.csv"',
                     "X-Content-Type-Options": "nosniff"})
    return web.json_response({
        "report": name, "from": f.start.date().isoformat(), "to": (f.end - timedelta(days=1)).date().isoformat(),
        "filters": {"channel": f.channel, "language": f.language, "queue": f.queue},
        "tables": {k: t.as_json() for k, t in tables.items()},
    })


@require(*VIEWERS)
async def index_handler(request: web.Request) -> web.Response:
    """The reports there are, and the values the filters can take."""
    async with request.app[DB].session() as s:
        channels = sorted((await s.scalars(select(Conversation.channel).distinct())).all())
        languages = sorted(x for x in (await s.scalars(select(Conversation.language).distinct())).all() if x)
        queues = [{"id": i, "name": n} for i, n in (await s.execute(select(Queue.id, Queue.name).order_by(Queue.name))).all()]
    return web.json_response({"reports": list(queries.REPORTS), "channels": channels, "languages": languages,
                              "queues": queues})


PAGE_FILES = {"reports.js": "text/javascript", "reports.css": "text/css"}


async def page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "reports.html", headers=HEADERS)


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in PAGE_FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name, headers={"Content-Type": PAGE_FILES[name], "X-Content-Type-Options": "nosniff",
                                                    "Cache-Control": "no-cache"})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/v1/reports", index_handler),
        web.get("/api/v1/reports/{name:[a-z_]+}", report_handler),
        web.get("/console/reports", page),
        web.get("/console/reports/static/{name}", asset),
    ]
