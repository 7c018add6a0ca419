"""Throughput: short conversations from many clients, for three set-ups in the same run.

(a) bare single-process Rasa: Rasa's REST webhook straight to one engine in Rasa 3.6's stock
    configuration (none of the cuts in `bot.engine_process.Tuning`: TensorFlow's default threads,
    the domain sent with every action call, Rasa's own response validation, SQLite tracker store
    with SQLite's default journal). Same model, same SQL tracker store kind, same action server
    (the gateway's, which Rasa calls for custom actions);
(b) one gateway + one engine (the gateway's REST channel; the engine with all cuts);
(c) one gateway + a pool of two engines (bot/engine_pool.py), each with all cuts and one
    TensorFlow thread (`engine_threads`: the 2 cores shared out; (b) uses the first of them).

Three real engines are started: the stock one for (a) and two tuned ones. The gateway runs in
this process on one port that every engine calls for custom actions; for (b) and (c) it is
rebuilt with a pool of one or two engines. For each client count, each set-up runs for the same
time: every client sends short conversations (greeting, meter reading, outage, opening hours;
bench/latency.py's scripts) turn after turn, each conversation with a fresh sender.

Prints turns/s, p50/p99 per turn, and (c)/(a); writes JSON (default bench/results/throughput.json).
For the engine's CPU per turn, stock against tuned, see bench/engine_turn.py.

    .venv/bin/python bench/throughput.py [--clients 8 32] [--seconds 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, summary  # noqa: E402
from bench.latency import ReadingCounter, short_script  # noqa: E402
from bot.reference.demo_data import seed_demo_data  # noqa: E402
from bot.engine_process import EngineConfig, LocalEngines, engine_threads, train  # noqa: E402
from resonanz.app import ENGINE, ENGINE_READY, create_app  # noqa: E402
from resonanz.logs import configure  # noqa: E402
from resonanz.settings import Settings  # noqa: E402
from resonanz.store import Database  # noqa: E402
from resonanz.store.migrate import upgrade  # noqa: E402

SETUPS = {
    "a_bare_rasa": "bare single-process Rasa, stock (REST webhook)",
    "b_gateway_1_engine": "gateway + 1 engine",
    "c_gateway_pool_2": "gateway + pool of 2 engines",
}


@asynccontextmanager
async def gateway(base: dict[str, Any], db: Database, engine_urls: list[str]) -> AsyncIterator[None]:
    app = await create_app(Settings(**base, engine_urls=tuple(engine_urls)), db=db)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", base["port"]).start()
    try:
        await asyncio.wait_for(app[ENGINE_READY].wait(), 120)
        pool = app[ENGINE]
        while await pool.refresh() < pool.total:  # every engine of the pool takes turns
            await asyncio.sleep(0.2)
        yield
    finally:
        await runner.cleanup()


async def load(url: str, clients: int, seconds: float, readings: ReadingCounter, tag: str) -> dict[str, Any]:
    """`clients` loops of short conversations for `seconds`; each turn timed."""
    latencies: list[float] = []
    errors = 0
    states: set[str] = set()
    counter = itertools.count()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        while loop.time() < deadline:
            n = next(counter)
            sender = f"{tag}-{n}"
            for text in short_script(n, readings):
                if loop.time() >= deadline:
                    return
                t0 = time.perf_counter()
                async with http.post(url, json={"sender": sender, "message": text}) as resp:
                    body = await resp.json()
                    ms = (time.perf_counter() - t0) * 1000
                if resp.status != 200 or not (body.get("messages") if isinstance(body, dict) else body):
                    errors += 1
                    continue
                latencies.append(ms)
                if isinstance(body, dict):
                    states.add(body["state"])

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {
        "turns": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
        "turns_per_s": round(len(latencies) / elapsed, 2), "latency": summary(latencies),
        "gateway_states": sorted(states),
        # Other work on the machine shows here: this run's own load is about 1-2.
        "loadavg_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    configure("console", "WARNING")
    models_dir = Settings().models_dir
    await asyncio.to_thread(train, models_dir)
    tmp = Path(tempfile.mkdtemp(prefix="resonanz-bench-throughput-"))
    db_url = f"sqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, db_url)
    db = Database(db_url)
    await seed_demo_data(db)
    gw_port = free_port()
    token, action_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)

    def engine(index: int, **config: Any) -> EngineConfig:
        return EngineConfig(port=free_port(), token=token, action_url=f"http://127.0.0.1:{gw_port}/actions/webhook",
                            action_token=action_token, models_dir=models_dir, var_dir=tmp, index=index, **config)

    threads = engine_threads(2)
    engines = LocalEngines([
        engine(0, rest_channel=True, tuning=frozenset()),  # (a): Rasa as it comes
        engine(1, tf_threads=threads),
        engine(2, tf_threads=threads),
    ])
    stock_url, pool_urls = engines.urls[0], engines.urls[1:]
    base = {"port": gw_port, "DATABASE_URL": db_url, "engine_token": token, "action_token": action_token,
            "engine_timeout": 60.0, "var_dir": tmp}
    gateway_url = f"http://127.0.0.1:{gw_port}/webhooks/rest/webhook"
    bare_url = f"{stock_url}/webhooks/rest/webhook"
    readings = ReadingCounter()
    run_id = secrets.token_hex(3)
    results: dict[str, dict[str, Any]] = {}
    await engines.start()
    try:
        print("waiting for three engines…", file=sys.stderr, flush=True)
        await engines.wait_ready()
        for clients in args.clients:
            cell: dict[str, Any] = {}
            # (a) still needs a gateway: the engine calls it for custom actions.
            async with gateway(base, db, [stock_url]):
                await load(bare_url, 2, 3, readings, f"warm-a-{run_id}-{clients}")  # not measured
                key = "a_bare_rasa"
                print(f"{clients} clients: {SETUPS[key]}…", file=sys.stderr, flush=True)
                cell[key] = await load(bare_url, clients, args.seconds, readings, f"{key}-{run_id}-{clients}")
            async with gateway(base, db, pool_urls[:1]):
                await load(gateway_url, 2, 3, readings, f"warm-b-{run_id}-{clients}")  # not measured
                key = "b_gateway_1_engine"
                print(f"{clients} clients: {SETUPS[key]}…", file=sys.stderr, flush=True)
                cell[key] = await load(gateway_url, clients, args.seconds, readings, f"{key}-{run_id}-{clients}")
            async with gateway(base, db, pool_urls):
                await load(gateway_url, 4, 3, readings, f"warm-pool-{run_id}-{clients}")  # both engines warm
                key = "c_gateway_pool_2"
                print(f"{clients} clients: {SETUPS[key]}…", file=sys.stderr, flush=True)
                cell[key] = await load(gateway_url, clients, args.seconds, readings, f"{key}-{run_id}-{clients}")
            cell["c_over_a"] = round(cell["c_gateway_pool_2"]["turns_per_s"] / cell["a_bare_rasa"]["turns_per_s"], 3)
            results[str(clients)] = cell
    finally:
        await engines.stop()
        await db.dispose()
    return {
        "machine_note": "same run; the machine may be shared, so absolute figures are noisy",
        "setups": SETUPS,
        "params": {"clients": args.clients, "seconds": args.seconds, "database": "sqlite",
                   "a_engine": "stock Rasa 3.6 (no tuning)", "b_c_engines": "all tuning, tf_threads=" + str(threads)},
        "target": "c_over_a >= 1.8",
        "clients": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per set-up and client count")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "throughput.json")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'clients':>7} {'set-up':32} {'turns/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for clients, cell in report["clients"].items():
        for key, label in SETUPS.items():
            r = cell[key]
            print(f"{clients:>7} {label:32} {r['turns_per_s']:8.2f} {r['latency']['p50_ms']:8.1f} "
                  f"{r['latency']['p99_ms']:8.1f} {r['errors']:6}")
        print(f"{clients:>7} (c)/(a) = ×{cell['c_over_a']}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
