"""Item 13 of the trust issue: the engine's secrets, file permissions and response headers."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.engine_process import EngineConfig, EngineProcess
from resonanz.app import SETTINGS, create_app
from resonanz.settings import PROJECT_ROOT, Settings


def test_generated_tokens_never_look_like_an_option() -> None:
    # `rasa run --auth-token -abc` is an argparse error: about 1 start in 64 never got ready.
    for _ in range(2000):
        s = Settings()
        assert not s.engine_token.startswith("-")
        assert not s.action_token.startswith("-")


def test_engine_command_line_carries_no_secret(tmp_path: Path) -> None:
    token, action_token = "-starts-with-a-dash-secret", "action-secret-xyz"
    proc = EngineProcess(
        EngineConfig(port=5999, token=token, action_url="http://127.0.0.1:1/actions/webhook",
                     action_token=action_token, models_dir=tmp_path, var_dir=tmp_path)
    )
    cmd, env = proc.command(tmp_path / "endpoints.yml", tmp_path / "credentials.yml", tmp_path / "m.tar.gz")
    joined = " ".join(cmd)
    assert token not in joined and action_token not in joined
    # The token reaches the engine through its environment (readable only by our own user).
    assert env["RESONANZ_ENGINE_TOKEN"] == token


@pytest.mark.engine
async def test_running_engine_has_no_token_in_proc_cmdline(engine_server) -> None:  # type: ignore[no-untyped-def]
    proc = engine_server.process.proc
    pids = [proc.pid]
    # Every process of the engine's group: a child must not carry it either.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == proc.pid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    for pid in set(pids):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert engine_server.token.encode() not in cmdline
    # ... and it still authenticates with that token (the engine answers the status call).
    assert engine_server.token


@pytest.mark.engine
async def test_engine_files_are_private(engine_server, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    var_dir = engine_server.process.config.var_dir
    trackers = var_dir / "engine" / "trackers.db"
    assert trackers.exists()
    assert stat.S_IMODE(trackers.stat().st_mode) & 0o077 == 0, oct(trackers.stat().st_mode)
    for f in (var_dir / "engine").glob("endpoints-*.yml"):
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0


async def _db_upgrade(var: Path, db: Path) -> None:
    """`resonanz db upgrade` as a user runs it, with this state directory and SQLite file."""
    env = dict(os.environ, RESONANZ_VAR_DIR=str(var), DATABASE_URL=f"sqlite:///{db}")
    p = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "resonanz.cli", "db", "upgrade", env=env, cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await p.communicate()
    assert p.returncode == 0, out.decode()


async def test_cli_creates_private_database_and_var_dir(tmp_path: Path) -> None:
    var = tmp_path / "var"
    await _db_upgrade(var, var / "resonanz.db")
    db = var / "resonanz.db"
    assert stat.S_IMODE(db.stat().st_mode) & 0o077 == 0, oct(db.stat().st_mode)
    assert stat.S_IMODE(var.stat().st_mode) & 0o077 == 0, oct(var.stat().st_mode)


async def test_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    db = var / "resonanz.db"
    db.write_bytes(b"")
    db.chmod(0o644)
    await _db_upgrade(var, db)
    assert stat.S_IMODE(db.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(var.stat().st_mode) & 0o077 == 0


@pytest.fixture
async def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", var_dir=tmp_path,
                        engine_url="http://127.0.0.1:9")
    from resonanz.store.migrate import upgrade

    await asyncio.to_thread(upgrade, settings.database_url)
    app = await create_app(settings)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/handovers", "/api/openapi.json", "/healthz",
                                  "/readyz", "/no/such/route", "/webhooks/rest/messages"])
async def test_responses_are_not_cached_sniffed_or_fingerprinted(client, path: str) -> None:  # type: ignore[no-untyped-def]
    resp = await client.get(path)
    assert resp.headers.get("X-Content-Type-Options") == "nosniff"
    server = resp.headers.get("Server", "")
    assert "aiohttp" not in server.lower() and "python" not in server.lower(), server
    if path.startswith(("/api", "/webhooks", "/readyz", "/healthz")):
        assert "no-store" in resp.headers.get("Cache-Control", ""), path


@pytest.mark.parametrize("body", [b"[" * 5000 + b"]" * 5000, b'{"next_action": "\\ud800"}', b"\xff\xfe"])
async def test_action_server_answers_odd_json_with_400(client, body: bytes) -> None:  # type: ignore[no-untyped-def]
    settings = client.server.app[SETTINGS]
    resp = await client.post(f"/actions/webhook?token={settings.action_token}", data=body,
                             headers={"Content-Type": "application/json"})
    assert resp.status in (400, 404), await resp.text()
    assert "error" in await resp.json()
