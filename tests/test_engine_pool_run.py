"""`RESONANZ_ENGINES=2 resonanz run`: two local engines on consecutive ports, each with its own
pid file, both used by the gateway, both stopped on Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from bot.engine_process import train
from resonanz.settings import Settings
from tests.support.cli import RESONANZ, _env, read_until

pytestmark = pytest.mark.engine


def two_free_ports() -> int:
    """A port p with p + 1 free as well."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            if p >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", p + 1))
                except OSError:
                    continue
                return int(p)
    raise AssertionError("no two consecutive free ports")


async def test_run_starts_two_engines_uses_both_and_stops_both(tmp_path: Path) -> None:
    await asyncio.to_thread(train, Settings().models_dir)
    first = two_free_ports()
    env = _env(tmp_path, RESONANZ_ENGINES="2", RESONANZ_ENGINE_PORT=str(first))
    var = Path(env["RESONANZ_VAR_DIR"])
    proc = await asyncio.create_subprocess_exec(
        RESONANZ, "run", "--no-train", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await read_until(proc.stdout, "Press Ctrl-C to stop", 300)
        assert {p.name for p in (var / "engine").glob("*.pid")} == {f"engine-{first}.pid", f"engine-{first + 1}.pid"}
        base = f"http://127.0.0.1:{env['RESONANZ_PORT']}"
        async with aiohttp.ClientSession() as http:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 300
            while True:  # ready means one engine; the second may still be loading its model
                async with http.get(base + "/readyz") as r:
                    body = await r.json()
                if body["engines"] == {"up": 2, "total": 2}:
                    break
                assert loop.time() < deadline, body
                await asyncio.sleep(0.5)
            async with http.post(base + "/webhooks/rest/webhook",
                                 json={"sender": "pool-cli", "message": "Wann haben Sie geöffnet?"}) as r:
                assert (await r.json())["state"] == "bot"
        # One tracker store per engine (SQLite).
        assert (var / "engine" / "trackers.db").exists() and (var / "engine" / "trackers-1.db").exists()
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        assert not list((var / "engine").glob("*.pid"))
        for port in (first, first + 1):
            with pytest.raises(OSError):
                _r, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
