"""The engine's cuts of CPU per turn (bot/rasa_plugin/tuning.py, bot/engine_process.Tuning):
each is asked for by the gateway and changes no answer of the engine."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from bot.engine_process import (
    ENGINE_SIDE_TUNING, EngineConfig, EngineProcess, Tuning, engine_env, engine_threads, engine_venv,
)
from resonanz.settings import PROJECT_ROOT, Settings
from tests.conftest import PG_ADMIN_URL, REQUIRE_SERVICES, free_port


def _config(tmp_path: Path, **values: object) -> EngineConfig:
    base: dict = {"port": free_port(), "token": "t", "action_url": f"http://127.0.0.1:{free_port()}/actions/webhook",
                  "action_token": "a", "models_dir": tmp_path, "var_dir": tmp_path}
    return EngineConfig(**{**base, **values})


def _env(config: EngineConfig, tmp_path: Path) -> dict[str, str]:
    proc = EngineProcess(config)
    endpoints, credentials = proc.write_config()
    _cmd, env = proc.command(endpoints, credentials, tmp_path / "model.tar.gz")
    return env


def test_every_cut_is_on_by_default_and_the_engine_side_ones_travel_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TF_INTRA_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    env = _env(_config(tmp_path, tf_threads=3), tmp_path)
    assert set(env["RESONANZ_ENGINE_TUNING"].split(",")) == {t.value for t in ENGINE_SIDE_TUNING}
    assert env["TF_INTRA_OP_PARALLELISM_THREADS"] == env["TF_INTER_OP_PARALLELISM_THREADS"] == "3"

    endpoints = yaml.safe_load(EngineProcess(_config(tmp_path)).write_config()[0].read_text())
    assert endpoints["action_endpoint"]["enable_selective_domain"] is True

    stock_config = _config(tmp_path, tuning=frozenset())
    stock_endpoints = yaml.safe_load(EngineProcess(stock_config).write_config()[0].read_text())
    assert "enable_selective_domain" not in stock_endpoints["action_endpoint"]
    stock = _env(stock_config, tmp_path)
    assert stock["RESONANZ_ENGINE_TUNING"] == ""
    assert "TF_INTRA_OP_PARALLELISM_THREADS" not in stock

    monkeypatch.setenv("TF_INTRA_OP_PARALLELISM_THREADS", "2")  # the operator's own choice wins
    assert _env(_config(tmp_path), tmp_path)["TF_INTRA_OP_PARALLELISM_THREADS"] == "2"


def test_engine_threads_share_the_cores_out() -> None:
    assert engine_threads(1, cores=2) == 2
    assert engine_threads(2, cores=2) == 1
    assert engine_threads(3, cores=2) == 1
    assert engine_threads(2, cores=8) == 4


# Runs inside the engine's Python 3.10 with Rasa 3.6: the cut must leave Rasa's verdicts (and its
# error) as they were, while the JSON Schema meta-schema is no longer checked on every call.
ENGINE_CHECK = textwrap.dedent("""
    import json, sys
    import jsonschema
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction
    from bot.rasa_plugin import tuning

    schema_cls = validator_for(RemoteAction.action_response_format_spec())
    checks = []
    original_check = schema_cls.check_schema.__func__
    schema_cls.check_schema = classmethod(lambda cls, s, **kw: (checks.append(1), original_check(cls, s, **kw))[1])
    tuning.apply(set(sys.argv[1].split(",")) - {""})
    action = RemoteAction("action_x", None)
    good = {"events": [{"event": "slot", "name": "postcode", "value": "10115"}],
            "responses": [{"response": "utter_outage_none"}]}
    verdicts = [action._validate_action_result(good) for _ in range(20)]
    checks_for_good = len(checks)
    try:
        action._validate_action_result({"events": [{"event": "slot", "name": 5}], "responses": []})
        error = None
    except jsonschema.ValidationError as exc:
        error = exc.message
    print(json.dumps({"verdicts": verdicts, "checks": checks_for_good, "error": error}))
""")


def _engine_check(cuts: str, script: str = ENGINE_CHECK, *args: str) -> dict:
    python = engine_venv() / "bin" / "python"
    if not python.exists():
        pytest.skip(f"the engine environment is missing ({python})")
    env = engine_env()
    out = subprocess.run([str(python), "-c", script, cuts, *args], cwd=PROJECT_ROOT, env=env,
                         capture_output=True, text=True, timeout=180, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_compiled_response_schema_keeps_rasas_verdicts_without_rechecking_the_schema() -> None:
    stock, tuned = _engine_check(""), _engine_check(Tuning.RESPONSE_SCHEMA.value)
    assert stock["verdicts"] == tuned["verdicts"] == [True] * 20
    assert stock["checks"] >= 20  # Rasa 3.6 re-checks the schema on every call
    assert tuned["checks"] <= 1   # checked once, when the cut is applied
    assert tuned["error"] == stock["error"]
    assert "Failed to validate Action server response" in tuned["error"]


def test_an_unknown_cut_is_refused_at_start_up() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _engine_check("no-such-cut")
    assert "unknown tuning" in failed.value.stderr


# The engine's tracker store (Rasa's SQLTrackerStore, SQLAlchemy 1.4) as the engine opens it.
TRACKER_CHECK = textwrap.dedent("""
    import asyncio, json, sys
    import sqlalchemy as sa
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import SlotSet
    from bot.rasa_plugin import tuning

    tuning.apply(set(sys.argv[1].split(",")) - {""})
    found = {}

    async def turns(store):
        tracker = await store.get_or_create_tracker("someone")
        for i in range(20):  # what a turn does with the tracker: load, add events, save
            tracker = await store.retrieve("someone")
            tracker.update(SlotSet("n", i))
            await store.save(tracker)
        found["sqlite_slots"] = [e.value for e in (await store.retrieve("someone")).events if isinstance(e, SlotSet)]

    store = SQLTrackerStore(Domain.empty(), dialect="sqlite", db=sys.argv[2])
    found["sqlite_pool"] = type(store.engine.pool).__name__
    with store.engine.connect() as c:
        found["sqlite"] = [c.exec_driver_sql("PRAGMA journal_mode").scalar(),
                           c.exec_driver_sql("PRAGMA synchronous").scalar()]
    asyncio.run(turns(store))
    if sys.argv[3]:
        pg = sa.create_engine(sys.argv[3])
        try:
            with pg.connect() as c:
                found["postgresql"] = c.exec_driver_sql("SHOW synchronous_commit").scalar()
                with c.begin():  # a transaction still commits as before
                    c.exec_driver_sql("CREATE TEMPORARY TABLE t (x int)")
                    c.exec_driver_sql("INSERT INTO t VALUES (1)")
                found["postgresql_rows"] = c.exec_driver_sql("SELECT count(*) FROM t").scalar()
        except sa.exc.OperationalError as exc:
            found["postgresql_error"] = str(exc).splitlines()[0]
    print(json.dumps(found))
""")


def test_tracker_commits_do_not_wait_for_the_disk(tmp_path: Path) -> None:
    pg = PG_ADMIN_URL.replace("+asyncpg", "")
    stock = _engine_check("", TRACKER_CHECK, str(tmp_path / "stock.db"), pg)
    tuned = _engine_check(Tuning.TRACKER_COMMIT.value, TRACKER_CHECK, str(tmp_path / "tuned.db"), pg)
    assert stock["sqlite"] == ["delete", 2]  # SQLite's defaults: rollback journal, FULL
    assert tuned["sqlite"] == ["wal", 1]     # WAL, NORMAL
    assert stock["sqlite_slots"] == tuned["sqlite_slots"] == list(range(20))
    # SQLAlchemy 1.4 closes a file database's connection after each session (NullPool), and
    # closing the last one checkpoints the WAL with fsyncs: the tuned store keeps its connection.
    assert (stock["sqlite_pool"], tuned["sqlite_pool"]) == ("NullPool", "QueuePool")
    # What that saves per turn is measured in bench/engine_turn.py, not asserted here: a timed
    # comparison fails on a loaded machine (CI saw 9.9 ms stock against 5.1 ms tuned).
    if "postgresql_error" in tuned:
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL is not reachable: {tuned['postgresql_error']}")
        return  # SQLite checked; PostgreSQL skipped locally
    assert stock["postgresql"] == "on"
    assert tuned["postgresql"] == "off"
    assert tuned["postgresql_rows"] == 1


def test_resonanz_run_shares_the_cores_out_among_its_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.engine_process import LocalEngines

    monkeypatch.setattr("os.cpu_count", lambda: 4)
    for engines, threads in ((1, 4), (2, 2), (4, 1)):
        configs = [p.config for p in LocalEngines.for_settings(Settings(engines=engines)).processes]
        assert [c.tf_threads for c in configs] == [threads] * engines
        assert all(c.tuning == frozenset(Tuning) for c in configs)
