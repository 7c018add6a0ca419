"""Small SQL expressions that PostgreSQL and SQLite spell differently (SQLAlchemy `@compiles`).

Timestamps are UTC on both: PostgreSQL `timestamptz`, SQLite the text SQLAlchemy writes
("YYYY-MM-DD HH:MM:SS.ffffff", UTC by `UTCDateTime`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, Integer, String, case, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement


class epoch(FunctionElement[float]):  # noqa: N801  (an SQL function)
    """Seconds since 1970 of a timestamp, as a float."""

    type = Float()
    inherit_cache = True


@compiles(epoch, "postgresql")
def _epoch_pg(element: epoch, compiler: Any, **kw: Any) -> str:
    return "EXTRACT(EPOCH FROM %s)::float8" % compiler.process(element.clauses, **kw)


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    return "((julianday(%s) - 2440587.5) * 86400.0)" % compiler.process(element.clauses, **kw)


class utc_day(FunctionElement[Any]):  # noqa: N801
    """The UTC calendar day of a timestamp: its start on PostgreSQL (date_bin: far cheaper per
    row than to_char), "YYYY-MM-DD" on SQLite. `day_text` turns either into "YYYY-MM-DD"."""

    inherit_cache = True


@compiles(utc_day, "postgresql")
def _day_pg(element: utc_day, compiler: Any, **kw: Any) -> str:
    return "date_bin('1 day', %s, TIMESTAMPTZ '1970-01-01 00:00:00+00')" % compiler.process(element.clauses, **kw)


@compiles(utc_day, "sqlite")
def _day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    return "substr(%s, 1, 10)" % compiler.process(element.clauses, **kw)


def day_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date().isoformat()
    return str(value)


BUCKET_SECONDS = 900  # business hours are judged per quarter of an hour


class quarter_start(FunctionElement[Any]):  # noqa: N801
    """The start of the quarter hour (UTC) a timestamp falls in: a timestamp on PostgreSQL
    (date_bin, cheap on an index-only scan), seconds since 1970 on SQLite. `bucket_epoch`
    turns either into seconds."""

    inherit_cache = True


@compiles(quarter_start, "postgresql")
def _qs_pg(element: quarter_start, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return f"date_bin('{BUCKET_SECONDS} seconds', {arg}, TIMESTAMPTZ '1970-01-01 00:00:00+00')"


@compiles(quarter_start, "sqlite")
def _qs_sqlite(element: quarter_start, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {arg}) AS INTEGER) / {BUCKET_SECONDS} * {BUCKET_SECONDS})"


class bucket_epoch(FunctionElement[int]):  # noqa: N801
    """A `quarter_start` value as whole seconds since 1970 (use it on grouped rows, not per message)."""

    type = Integer()
    inherit_cache = True


@compiles(bucket_epoch, "postgresql")
def _be_pg(element: bucket_epoch, compiler: Any, **kw: Any) -> str:
    return "EXTRACT(EPOCH FROM %s)::bigint" % compiler.process(element.clauses, **kw)


@compiles(bucket_epoch, "sqlite")
def _be_sqlite(element: bucket_epoch, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


class before_colon(FunctionElement[str]):  # noqa: N801
    """The part of a string before its first ":" (all of it when there is none)."""

    type = String()
    inherit_cache = True


@compiles(before_colon, "postgresql")
def _bc_pg(element: before_colon, compiler: Any, **kw: Any) -> str:
    return "split_part(%s, ':', 1)" % compiler.process(element.clauses, **kw)


@compiles(before_colon, "sqlite")
def _bc_sqlite(element: before_colon, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return f"(CASE WHEN instr({arg}, ':') > 0 THEN substr({arg}, 1, instr({arg}, ':') - 1) ELSE {arg} END)"


def seconds_between(start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[float]:
    return epoch(end) - epoch(start)


def percentiles(values: Any, value: str, groups: list[str], ps: tuple[int, ...], label: str | None = None,
                kind: str | None = None) -> Any:
    """Nearest-rank percentiles of `values.c[value]` per group, in SQL (window functions, on
    PostgreSQL and SQLite alike): the smallest value whose rank r among n satisfies r*100 >= p*n.
    Rows with a NULL value are left out. One row per group: the groups (or `label` when there are
    none), n, then p<P> per P; `kind`, when given, as a first column (to tell apart the parts of a
    UNION)."""
    group_cols = [values.c[g] for g in groups]
    v = values.c[value]
    ranked = select(
        *group_cols, v.label("v"),
        func.row_number().over(partition_by=group_cols or None, order_by=v).label("r"),
        func.count().over(partition_by=group_cols or None).label("n"),
    ).where(v.is_not(None)).subquery("ranked")
    out_groups: list[Any] = [ranked.c[g] for g in groups]
    cols = [func.max(ranked.c.n).label("n")]
    for p in ps:
        cols.append(func.min(case((ranked.c.r * 100 >= p * ranked.c.n, ranked.c.v))).label(f"p{p}"))
    first = [literal(kind).label("kind")] if kind is not None else []
    if out_groups:
        return select(*first, *out_groups, *cols).group_by(*out_groups)
    return select(*first, *([literal(label).label("group")] if label is not None else []), *cols)


__all__ = ["BUCKET_SECONDS", "before_colon", "bucket_epoch", "epoch", "percentiles", "quarter_start", "seconds_between",
           "day_text", "utc_day"]
