"""What the benchmarks share: percentiles, free ports, and one real engine beside one gateway."""

from __future__ import annotations

import asyncio
import secrets
import socket
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.reference.demo_data import seed_demo_data  # noqa: E402
from bot.engine_process import EngineConfig, EngineProcess, train  # noqa: E402
from resonanz.app import ENGINE_READY, create_app  # noqa: E402
from resonanz.logs import configure  # noqa: E402
from resonanz.settings import Settings  # noqa: E402
from resonanz.store import Database  # noqa: E402
from resonanz.store.migrate import upgrade  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50), 2),
        "p95_ms": round(pct(values, 95), 2),
        "p99_ms": round(pct(values, 99), 2),
        "mean_ms": round(statistics.fmean(values), 2) if values else float("nan"),
        "max_ms": round(max(values), 2) if values else float("nan"),
    }


@dataclass
class Stack:
    app: web.Application
    engine: EngineProcess
    db: Database
    settings: Settings
    base_url: str  # the gateway


@asynccontextmanager
async def engine_and_gateway(
    prefix: str, extra_settings: Callable[[str, Path], dict[str, Any]] = lambda base_url, tmp: {}
) -> AsyncIterator[Stack]:
    """Train if needed, then a fresh SQLite database with demo data, one engine (with Rasa's own
    REST channel on, for the bare-engine baseline) and the gateway in this process, both ready.
    `extra_settings(gateway_url, tmp_dir)` adds gateway settings."""
    configure("console", "WARNING")
    models_dir = Settings().models_dir
    await asyncio.to_thread(train, models_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f"resonanz-bench-{prefix}-"))
    db_url = f"sqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, db_url)
    db = Database(db_url)
    await seed_demo_data(db)
    gw_port, engine_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{gw_port}"
    token, action_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    engine = EngineProcess(EngineConfig(
        port=engine_port, token=token, action_url=f"{base_url}/actions/webhook",
        action_token=action_token, models_dir=models_dir, var_dir=tmp, rest_channel=True,
    ))
    settings = Settings(
        port=gw_port, DATABASE_URL=db_url, engine_url=engine.url, engine_token=token,
        action_token=action_token, engine_timeout=30.0, var_dir=tmp, **extra_settings(base_url, tmp),
    )
    app = await create_app(settings, db=db)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", gw_port).start()
    await engine.start()
    try:
        print("waiting for the engine…", file=sys.stderr, flush=True)
        await engine.wait_ready()
        await asyncio.wait_for(app[ENGINE_READY].wait(), 120)
        yield Stack(app, engine, db, settings, base_url)
    finally:
        await runner.cleanup()
        await engine.stop()
        await db.dispose()
