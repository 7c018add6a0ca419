"""Throughput of the two-gateway topology (resonanz/topology.py): two gateway processes and two
Rasa engines on PostgreSQL and Redis, each on its own 127.0.0.1 port. Every client runs short
conversations (bench/latency.py's scripts, fresh sender each) and sends each turn to the next
gateway in turn — no stickiness, as behind the documented reverse proxy.

Needs PostgreSQL (RESONANZ_BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/test: a
fresh database is created next to it and dropped) and Redis (RESONANZ_BENCH_REDIS_URL).
Prints turns/s and p50/p99 per client count; writes bench/results/topology.json.

    .venv/bin/python bench/topology.py [--clients 8 32] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import summary  # noqa: E402
from bench.latency import ReadingCounter, short_script  # noqa: E402
from bot.reference.demo_data import seed_demo_data  # noqa: E402
from resonanz.logs import configure  # noqa: E402
from resonanz.store import Database  # noqa: E402
from resonanz.store.migrate import upgrade  # noqa: E402
from resonanz.topology import Topology, ensure_database  # noqa: E402

PG = os.environ.get("RESONANZ_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("RESONANZ_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


async def load(urls: list[str], clients: int, seconds: float, readings: ReadingCounter, tag: str) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal errors
        turn = itertools.count()
        while loop.time() < deadline:
            n = next(counter)
            for text in short_script(n, readings):
                if loop.time() >= deadline:
                    return
                url = urls[next(turn) % len(urls)] + "/webhooks/rest/webhook"
                t0 = time.perf_counter()
                async with http.post(url, json={"sender": f"{tag}-{n}", "message": text}) as resp:
                    body = await resp.json()
                ms = (time.perf_counter() - t0) * 1000
                if resp.status != 200 or not body.get("messages"):
                    errors += 1
                    if errors == 1:
                        print(f"first error: {resp.status} {body}", file=sys.stderr, flush=True)
                    continue
                latencies.append(ms)

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=120)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return {"turns": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
            "turns_per_s": round(len(latencies) / elapsed, 2), "latency": summary(latencies),
            "loadavg_1min_after": round(os.getloadavg()[0], 2)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    configure("console", "WARNING")
    base, _, _ = PG.rpartition("/")
    url = f"{base}/resonanz_bench_{uuid.uuid4().hex[:8]}"
    await ensure_database(url)
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    await seed_demo_data(db)
    results: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="resonanz-topology-") as tmp:
            print("starting 2 engines and 2 gateways…", file=sys.stderr, flush=True)
            async with Topology(url, REDIS, Path(tmp), settings={"redis_channel": f"bench:{uuid.uuid4().hex[:6]}",
                                                                  "engine_timeout": 60.0}) as topology:
                readings = ReadingCounter()
                await load(topology.urls, 4, 3, readings, f"warm-{uuid.uuid4().hex[:4]}")
                for clients in args.clients:
                    print(f"{clients} clients…", file=sys.stderr, flush=True)
                    results[str(clients)] = await load(topology.urls, clients, args.seconds, readings,
                                                       f"c{clients}-{uuid.uuid4().hex[:4]}")
    finally:
        await db.dispose()
        import asyncpg

        admin = await asyncpg.connect(PG)
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()
    return {"topology": "2 gateway processes + 2 engines, PostgreSQL + Redis, turns alternate gateways",
            "machine_note": "the machine may be shared, so absolute figures are noisy",
            "params": {"clients": args.clients, "seconds": args.seconds}, "clients": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "topology.json")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'clients':>7} {'turns/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for clients, r in report["clients"].items():
        print(f"{clients:>7} {r['turns_per_s']:8.2f} {r['latency']['p50_ms']:8.1f} {r['latency']['p99_ms']:8.1f} "
              f"{r['errors']:6}")


if __name__ == "__main__":
    main()
