"""The framework without the reference bot: a second, tiny bot (tests/example_bot/: its own
domain, NLU data, rules, configuration and one action module) is trained with the real engine
environment, served by `resonanz run` with that configuration, and answers over the REST channel
- from its domain and from its own action. Nothing of bot.reference is imported in that process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from resonanz.settings import PROJECT_ROOT
from tests.conftest import free_port
from tests.support.cli import read_until

EXAMPLE = PROJECT_ROOT / "tests" / "example_bot"
# `resonanz run`, reporting at exit which modules of the reference bot the process had imported.
RUN = """
import atexit, sys
atexit.register(lambda: print("reference modules:", sorted(m for m in sys.modules if m.startswith("bot.reference")), flush=True))
from resonanz.cli import main
sys.exit(main(["run", "--no-train"]))
"""


@pytest.mark.engine
async def test_a_tiny_bot_runs_on_the_framework_without_the_reference_bot(tmp_path: Path) -> None:
    from bot.engine_process import train

    models = tmp_path / "models"
    assert await asyncio.to_thread(train, models, root=EXAMPLE)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESONANZ_") and k != "DATABASE_URL"}
    env.update(
        RESONANZ_CONFIG_FILE=str(EXAMPLE / "resonanz.yml"),
        RESONANZ_MODELS_DIR=str(models),
        RESONANZ_VAR_DIR=str(tmp_path / "var"),
        RESONANZ_PORT=str(port),
        RESONANZ_ENGINE_PORT=str(free_port()),
        DATABASE_URL=f"sqlite:///{tmp_path / 'example.db'}",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN, cwd=PROJECT_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await read_until(proc.stdout, "Press Ctrl-C to stop", 240)
        url = f"http://127.0.0.1:{port}/webhooks/rest/webhook"
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"sender": "tiny-1", "message": "hello"}) as r:
                assert r.status == 200, await r.text()
                greeting = await r.json()
            async with http.post(url, json={"sender": "tiny-1", "message": "weather"}) as r:
                assert r.status == 200, await r.text()
                weather = await r.json()
        assert [m["text"] for m in greeting["messages"]] == ["Hello from the tiny example bot."]
        assert [m["text"] for m in weather["messages"]] == ["The weather today: sunny, said action_weather."]
        proc.send_signal(signal.SIGINT)
        rest = (await asyncio.wait_for(proc.stdout.read(), 60)).decode()
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        assert "reference modules: []" in rest, rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
