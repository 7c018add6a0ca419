"""The local engine lives and dies with `resonanz run`: an engine left over by a killed gateway
is stopped at the next start, a gateway killed with SIGKILL takes its engine along, and a port
held by a foreign program is one clear line, not a restart loop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from bot.engine_process import EngineConfig, EngineProcess, _exited, _read_pid
from resonanz.settings import Settings
from tests.conftest import EngineHandle
from tests.support.cli import RESONANZ, _env, read_until


async def test_engine_port_held_by_a_foreign_program_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = _env(tmp_path, RESONANZ_ENGINE_PORT=str(port))
        proc = await asyncio.create_subprocess_exec(
            RESONANZ, "run", "--no-train", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    text = err.decode()
    assert f"port {port} for the engine is in use by another program" in text
    assert "Traceback" not in text


@pytest.mark.engine
async def test_stale_engine_is_replaced_and_sigkill_takes_the_engine_along(
    tmp_path: Path, engine_server: EngineHandle
) -> None:
    env = _env(tmp_path)
    engine_port, var_dir = int(env["RESONANZ_ENGINE_PORT"]), Path(env["RESONANZ_VAR_DIR"])
    # An engine of ours left behind by a gateway that died, holding the port with an old token.
    stale = EngineProcess(
        EngineConfig(port=engine_port, token="old-token", action_url="http://127.0.0.1:9/actions/webhook",
                     action_token="old", models_dir=Settings().models_dir, var_dir=var_dir)
    )
    await stale.start()
    assert stale.proc is not None
    stale_pid = stale.proc.pid
    proc = await asyncio.create_subprocess_exec(
        RESONANZ, "run", "--no-train", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await read_until(proc.stdout, "Press Ctrl-C to stop", 240)
        assert await _exited(stale_pid, 1)
        base = f"http://127.0.0.1:{env['RESONANZ_PORT']}"
        async with aiohttp.ClientSession() as http:
            async with http.post(base + "/webhooks/rest/webhook",
                                 json={"sender": "lifecycle", "message": "Wann haben Sie geöffnet?"}) as r:
                body = await r.json()
                assert body["state"] == "bot" and body["messages"], body
        engine_pid = _read_pid(var_dir / "engine" / f"engine-{engine_port}.pid")
        assert engine_pid is not None and engine_pid != stale_pid
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        # The kernel stops the orphaned engine (PR_SET_PDEATHSIG): the port is free again.
        assert await _exited(engine_pid, 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if stale.proc is not None:
            await stale.proc.wait()
        pid = _read_pid(var_dir / "engine" / f"engine-{engine_port}.pid")
        if pid is not None:
            with __import__("contextlib").suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
