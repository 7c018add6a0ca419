"""aiosqlite with one thread hop per statement.

SQLAlchemy's aiosqlite adapter makes four trips to aiosqlite's thread for every statement that
returns rows (create the cursor, execute, fetch all, close), each a round through the event loop.
Under load every trip waits behind the other ready callbacks, and on SQLite's single connection
(see db.py) the next transaction waits for all of them. This cursor does the same four steps in
one function in aiosqlite's thread, so a statement costs one trip: an intake transaction (select,
insert, commit, and the pool's rollback) went from ten trips to three.

Used through `create_async_engine(..., module=dbapi())` with the usual `sqlite+aiosqlite` URL;
it relies on SQLAlchemy's adapter classes (pinned in pyproject.toml)."""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> tuple[Any, ...]:
    """In aiosqlite's thread: the whole statement, and everything the adapter reads afterwards."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else ()
        return description, rows, cursor.rowcount, cursor.lastrowid, conn.in_transaction
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A DBAPI cursor whose execute() is one trip to aiosqlite's thread; nothing else is."""

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # nothing is open in the thread after execute()

    def close(self) -> None:
        self._rows.clear()

    def _trip(self, operation: Any, parameters: Any, many: bool) -> None:
        connection: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        try:
            self._description, rows, self._rowcount, self._lastrowid, connection.in_transaction = await_(
                self._run_async(operation, parameters, many)
            )
            self._rows = collections.deque(rows)
        except Exception as error:  # noqa: BLE001 - the adapter translates driver errors
            connection.in_transaction = True  # not known: the next commit or rollback goes through
            self._adapt_connection._handle_exception(error)

    async def _run_async(self, operation: Any, parameters: Any, many: bool) -> Any:
        async with self._adapt_connection._execute_mutex:
            connection: aiosqlite.Connection = self._connection
            return await connection._execute(_run, connection._conn, operation, parameters, many)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._trip(operation, parameters, False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._trip(operation, seq_of_parameters, True)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """Also skips the trip of a commit or rollback when no transaction is open (a session that
    only read; the pool's rollback after every commit)."""

    __slots__ = ("in_transaction",)
    _cursor_cls = OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.in_transaction = True  # until a statement says otherwise

    def commit(self) -> None:
        if self.in_transaction:
            super().commit()
            self.in_transaction = False

    def rollback(self) -> None:
        if self.in_transaction:
            super().rollback()
            self.in_transaction = False


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDBAPI:
    return OneTripDBAPI(aiosqlite, sqlite3)
