"""The command line as a user types it: `resonanz run` starts engine and gateway, prints the
URLs, serves, and stops both on Ctrl-C; `check-config` names problems."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import EngineHandle
from tests.support.cli import RESONANZ, _env, read_until
from tests.support.settle import until

@pytest.mark.engine
async def test_run_starts_both_prints_urls_and_ctrl_c_stops_both(tmp_path: Path, engine_server: EngineHandle) -> None:
    # engine_server guarantees a trained model; `run --no-train` starts its own engine.
    env = _env(tmp_path)
    port, engine_port = env["RESONANZ_PORT"], env["RESONANZ_ENGINE_PORT"]
    proc = await asyncio.create_subprocess_exec(
        RESONANZ, "run", "--no-train", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        out = await read_until(proc.stdout, "Press Ctrl-C to stop", 240)
        assert f"http://127.0.0.1:{port}/chat" in out
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/readyz") as r:
                assert r.status == 200 and (await r.json())["engine"] is True
            async with http.post(base + "/webhooks/rest/webhook", json={"sender": "cli", "message": "Wann haben Sie geöffnet?"}) as r:
                body = await r.json()
                assert body["state"] == "bot" and body["messages"]
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        # `run` migrates but never seeds demo data: only the demo set-up (`resonanz db seed`) does.
        with sqlite3.connect(tmp_path / "run.db") as db:
            assert db.execute("SELECT count(*) FROM accounts").fetchone() == (0,)
            assert db.execute("SELECT count(*) FROM outages").fetchone() == (0,)
        # Both are gone: nothing listens on either port any more (the engine, stopped by the
        # gateway on its way out, may take a moment to release its port).
        async def closed(p: int) -> bool:
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", p)
            except OSError:
                return True
            w.close()
            return False

        for p in (port, engine_port):
            await until(lambda p=int(p): closed(p), f"nothing listens on port {p}", 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_check_config_reports_problems_by_name(tmp_path: Path) -> None:
    env = _env(tmp_path, RESONANZ_CONNECTORS=json.dumps(["rest", "pigeon"]), RESONANZ_HOST="0.0.0.0")
    proc = await asyncio.create_subprocess_exec(
        RESONANZ, "check-config", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 1
    assert "connector 'pigeon': unknown connector" in err.decode()
    assert "RESONANZ_PUBLIC_URL is not set" in err.decode()


async def test_an_unknown_key_in_the_configuration_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "resonanz.yml"
    config.write_text("actoins: bot.reference.actions\n", encoding="utf-8")
    env = _env(tmp_path, RESONANZ_CONFIG_FILE=str(config))
    proc = await asyncio.create_subprocess_exec(
        RESONANZ, "check-config", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _out, err = await proc.communicate()
    assert proc.returncode == 1
    assert "unknown top-level key(s) actoins" in err.decode() and "Traceback" not in err.decode()


async def test_invalid_setting_is_named(tmp_path: Path) -> None:
    env = _env(tmp_path, RESONANZ_PORT="seventy")
    proc = await asyncio.create_subprocess_exec(
        RESONANZ, "check-config", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _out, err = await proc.communicate()
    assert proc.returncode == 1
    assert "port" in err.decode() and "Invalid configuration" in err.decode()
