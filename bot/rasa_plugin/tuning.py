"""Cuts of the engine's CPU per turn that change no answer. Runs INSIDE the Rasa 3.6 process.

`bot/rasa_plugin/launch.py` applies the cuts named in RESONANZ_ENGINE_TUNING (comma-separated;
the gateway sets it, see `bot/engine_process.py`) before Rasa starts. Each one is measured by
`bench/engine_turn.py`, which can turn it off.

- `response-schema`: Rasa 3.6 checks every action-server response with `jsonschema.validate`,
  which first validates the schema itself against the JSON Schema meta-schema and builds a new
  validator, every call. A profile of the reference bot showed that as about half of the engine's
  CPU per turn (forms call their validation action on every step). Here the schema is checked once
  and its validator kept; a response it rejects still goes through Rasa's own code, which raises
  Rasa's own error.
- `tracker-commit`: Rasa's SQL tracker store is synchronous, so every fsync a commit waits for
  blocks the engine's whole event loop (about 10 ms per commit on this machine's disk). Each
  database connection the engine opens (only its tracker store opens any) commits without
  waiting for the disk: SQLite in WAL mode with synchronous=NORMAL, PostgreSQL with
  synchronous_commit=off. SQLite also keeps its connection: SQLAlchemy 1.4 opens and closes one
  per session for a file database, and closing the last one checkpoints the WAL with fsyncs
  (SQLAlchemy 2 keeps a pool there too, as done here). Nothing changes for readers, and neither store can be corrupted; an
  operating-system crash or power cut (not a crash of the engine) may lose the last turns of the
  engine-side tracker.
"""

import os
from typing import Any, Callable, Dict, Text

TUNING_ENV = "RESONANZ_ENGINE_TUNING"
RESPONSE_SCHEMA = "response-schema"
TRACKER_COMMIT = "tracker-commit"


def requested(environ: Dict[Text, Text] = os.environ) -> set:  # type: ignore[assignment]
    return {name.strip() for name in environ.get(TUNING_ENV, "").split(",") if name.strip()}


def compiled_response_schema() -> None:
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    stock: Callable[[RemoteAction, Dict[Text, Any]], bool] = RemoteAction._validate_action_result

    def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
        if validator.is_valid(result):
            return True
        return stock(self, result)  # raises Rasa's own ValidationError with its message

    _validate_action_result.stock = stock  # type: ignore[attr-defined]
    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]


def commits_without_fsync_wait() -> None:
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            statements = ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"]
        elif type(dbapi_connection).__module__.startswith("psycopg2"):
            statements = ["SET SESSION synchronous_commit TO off"]
        else:
            return
        autocommit = getattr(dbapi_connection, "autocommit", None)
        if autocommit is False:
            dbapi_connection.autocommit = True  # a session setting, not a transaction left open
        cursor = dbapi_connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()
        if autocommit is False:
            dbapi_connection.autocommit = False

    event.listen(Engine, "connect", on_connect)

    from rasa.core import tracker_store
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import QueuePool

    stock_kwargs = tracker_store.create_engine_kwargs

    def create_engine_kwargs(url: Any) -> Dict[Text, Any]:
        kwargs = stock_kwargs(url)
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            kwargs.setdefault("poolclass", QueuePool)
            # The pool hands a connection to one user at a time; Rasa may use it off its loop thread.
            kwargs.setdefault("connect_args", {}).setdefault("check_same_thread", False)
        return kwargs

    tracker_store.create_engine_kwargs = create_engine_kwargs


CUTS: Dict[Text, Callable[[], None]] = {
    RESPONSE_SCHEMA: compiled_response_schema,
    TRACKER_COMMIT: commits_without_fsync_wait,
}


def apply(names: set) -> None:
    unknown = names - set(CUTS)
    if unknown:
        raise ValueError(f"{TUNING_ENV}: unknown tuning {sorted(unknown)}; known: {sorted(CUTS)}")
    for name in sorted(names):
        CUTS[name]()
