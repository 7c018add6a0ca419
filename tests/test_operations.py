"""docs/operations.md is true: the backup and restore commands, run exactly as written there, bring
back every conversation after the database was wiped; the alert rules in docs/alerts.yml are valid
and name only metrics /metrics serves."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from resonanz.app import create_app
from resonanz.settings import PROJECT_ROOT, Settings
from resonanz.store import Database
from resonanz.store.migrate import upgrade
from resonanz.store.models import Conversation, Customer, Handover, Message
from tests.conftest import BACKENDS, REQUIRE_SERVICES, _pg_admin, make_database_url, migrated_database
from tests.support.scripted_engine import ScriptedEngine, serve_engine

OPERATIONS = PROJECT_ROOT / "docs" / "operations.md"
ALERTS = PROJECT_ROOT / "docs" / "alerts.yml"


def documented(name: str) -> str:
    """The shell block after `<!-- test: name -->` in docs/operations.md."""
    found = re.search(rf"<!-- test: {re.escape(name)} -->\s*```sh\n(.*?)```", OPERATIONS.read_text(), re.S)
    assert found, f"docs/operations.md has no block marked {name!r}"
    return found.group(1)


def run_documented(name: str, **env: str) -> None:
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", documented(name)], env={**os.environ, **env},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"


async def snapshot(db: Database) -> dict[str, Any]:
    async with db.session() as s:
        return {
            "customers": sorted((await s.execute(select(Customer.id, Customer.language))).all()),
            "conversations": sorted((await s.execute(select(Conversation.id, Conversation.state,
                                                            Conversation.channel))).all()),
            "messages": (await s.execute(select(Message.public_id, Message.conversation_id, Message.direction,
                                                Message.author, Message.text, Message.status)
                                         .order_by(Message.id))).all(),
            "handovers": sorted((await s.execute(select(Handover.id, Handover.status, Handover.reason))).all()),
        }


async def serve(url: str, engine_url: str, tmp_path: Path) -> tuple[TestClient, Database]:
    db = Database(url)
    settings = Settings(DATABASE_URL=url, engine_url=engine_url, connectors=("rest",), var_dir=tmp_path)
    client = TestClient(TestServer(await create_app(settings, db=db)))
    await client.start_server()
    return client, db


@pytest.mark.parametrize("backend", BACKENDS)
async def test_backup_wipe_restore_keeps_every_conversation(backend: str, tmp_path: Path) -> None:
    tool = "sqlite3" if backend == "sqlite" else "pg_dump"
    if shutil.which(tool) is None:
        # scripts/test.sh installs it; under CI a missing tool fails instead of skipping.
        (pytest.fail if REQUIRE_SERVICES else pytest.skip)(f"{tool} is not installed")
    url, drop = await make_database_url(backend, tmp_path)
    await asyncio.to_thread(upgrade, url)
    backup = tmp_path / "backup.dump"
    senders = [f"backup-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    try:
        async with serve_engine(ScriptedEngine()) as engine_url:
            client, db = await serve(url, engine_url, tmp_path)
            try:
                conversation_of: dict[str, str] = {}
                for sender in senders:
                    for text in ("hallo", "ich will einen Mensch"):
                        r = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
                        assert r.status == 200, await r.text()
                        conversation_of[sender] = (await r.json())["conversation_id"]
                before = await snapshot(db)
            finally:
                await client.close()
                await db.dispose()
            assert len(before["conversations"]) == 3 and len(before["handovers"]) == 3
            assert len(before["messages"]) >= 12

            env = {"BACKUP": str(backup)}
            if backend == "sqlite":
                env["RESONANZ_DB"] = url.removeprefix("sqlite:///")
            else:
                env["DATABASE_URL"] = url
            run_documented(f"backup-{backend}", **env)
            assert backup.stat().st_size > 0

            # Wipe: the database is gone, then (PostgreSQL) an empty one of the same name exists.
            if backend == "sqlite":
                await drop()
                assert not Path(env["RESONANZ_DB"]).exists()
            else:
                name = url.rsplit("/", 1)[1]
                admin = await _pg_admin()
                try:
                    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                    await admin.execute(f'CREATE DATABASE "{name}"')
                finally:
                    await admin.close()
            run_documented(f"restore-{backend}", **env)
            await asyncio.to_thread(upgrade, url)  # `resonanz db upgrade` after a restore: nothing to do

            client, db = await serve(url, engine_url, tmp_path)
            try:
                assert await snapshot(db) == before
                # The gateway continues the restored conversations where they were.
                for sender in senders:
                    r = await client.get("/webhooks/rest/messages", params={"sender": sender})
                    assert "bot:greet" in [m["text"] for m in (await r.json())["messages"]]
                    r = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": "noch da?"})
                    answer = await r.json()
                    assert answer["conversation_id"] == conversation_of[sender] and answer["state"] == "queued"
            finally:
                await client.close()
                await db.dispose()
    finally:
        await drop()


def test_alert_rules_are_valid_prometheus_rule_groups() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    groups = rules["groups"]
    assert groups and all(g["name"] and g["rules"] for g in groups)
    names = [r["alert"] for g in groups for r in g["rules"]]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in (r for g in groups for r in g["rules"]):
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert rule["expr"].strip() and rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
    if shutil.which("promtool"):
        result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr


async def test_alert_rules_name_only_served_metrics(tmp_path: Path) -> None:
    url, drop = await make_database_url("sqlite", tmp_path)
    db = await migrated_database(url)
    try:
        async with serve_engine(ScriptedEngine()) as engine_url:
            settings = Settings(DATABASE_URL=url, engine_url=engine_url, connectors=("rest",), var_dir=tmp_path)
            app: web.Application = await create_app(settings, db=db)
            async with TestClient(TestServer(app)) as client:
                r = await client.get("/metrics")
                assert r.status == 200
                families = {f.name: f.type for f in text_string_to_metric_families(await r.text())}
    finally:
        await db.dispose()
        await drop()
    suffixes = {"_total": "counter", "_bucket": "histogram", "_count": "histogram", "_sum": "histogram"}
    used = set(re.findall(r"\bresonanz_[a-z_]+", ALERTS.read_text()))
    assert used
    for name in used:
        kind = next((k for s, k in suffixes.items() if name.endswith(s) and name[: -len(s)] in families), None)
        if kind is not None:
            assert families[name[: -len(next(s for s in suffixes if name.endswith(s)))]] == kind, name
        else:
            assert families.get(name) == "gauge", f"{name} is used in docs/alerts.yml but not served by /metrics"
