"""Transient database errors, injected at the database boundary: a SQLAlchemy event raises
OperationalError for chosen statements, as a dropped connection or a failover would."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from resonanz.store import Database

Matcher = Callable[[str, Sequence[Any] | Mapping[str, Any] | None], bool]


@dataclass
class Fault:
    """`times` failures of the statements `matches` selects; `failed` lists the statements hit."""

    matches: Matcher
    times: int = 1
    armed: bool = True
    failed: list[str] = field(default_factory=list)


def parameter_values(parameters: Sequence[Any] | Mapping[str, Any] | None) -> list[Any]:
    if parameters is None:
        return []
    if isinstance(parameters, Mapping):
        return list(parameters.values())
    out: list[Any] = []
    for p in parameters:  # executemany passes a list of parameter sets
        out += parameter_values(p) if isinstance(p, (Mapping, list, tuple)) else [p]
    return out


@contextlib.contextmanager
def database_fault(db: Database, matches: Matcher, *, times: int = 1, armed: bool = True) -> Iterator[Fault]:
    """While the block runs, the next `times` statements `matches` accepts fail (once armed)."""
    fault = Fault(matches, times, armed)

    def before_cursor_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                              executemany: bool) -> None:
        if fault.armed and len(fault.failed) < fault.times and fault.matches(statement, parameters):
            fault.failed.append(statement)
            raise OperationalError(statement, parameters, ConnectionResetError("injected: connection lost"))

    event.listen(db.engine.sync_engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield fault
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before_cursor_execute)


def touches(table: str, *verbs: str, values: Sequence[str] = ()) -> Matcher:
    """A statement of one of `verbs` (SELECT, UPDATE, ...) on `table` whose parameters include
    every one of `values`."""

    def matches(statement: str, parameters: Any) -> bool:
        text = " ".join(statement.split()).lower()
        if not any(text.startswith(v.lower()) for v in verbs) or f" {table}" not in text:
            return False
        found = {str(v) for v in parameter_values(parameters)}
        return all(v in found for v in values)

    return matches
