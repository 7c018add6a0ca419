"""Engine CPU per turn: the stock engine against the tuned one, in the same run.

One engine process per variant is started side by side (same model, same SQLite tracker store
kind, same action endpoint: the gateway in this process). A variant is a set of the cuts in
`bot.engine_process.Tuning`: `stock` has none, `tuned` has all, and `--each` adds one variant per
cut that leaves just that cut out (what each one saves). Rounds interleave the variants so machine
noise hits all alike; in each round every variant serves the same number of turns of the short
conversations (bench/latency.py's scripts) through the gateway, with `--clients` at once.

Measured per variant: the engine's CPU time per turn (utime + stime of the engine process, all
its threads, from /proc/<pid>/stat, before and after), turns/s and p50 per turn, and the CPU per
turn of this process (the gateway and the load clients). The median over the rounds is reported.

    .venv/bin/python bench/engine_turn.py [--turns 150] [--rounds 3] [--clients 4] [--each]
        [--via gateway|rasa-rest] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, summary  # noqa: E402
from bench.latency import ReadingCounter, short_script  # noqa: E402
from bench.throughput import gateway  # noqa: E402
from bot.engine_process import EngineConfig, LocalEngines, Tuning, train  # noqa: E402
from bot.reference.demo_data import seed_demo_data  # noqa: E402
from resonanz.logs import configure  # noqa: E402
from resonanz.settings import Settings  # noqa: E402
from resonanz.store import Database  # noqa: E402
from resonanz.store.migrate import upgrade  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def variants(each: bool) -> dict[str, frozenset[Tuning]]:
    chosen = {"stock": frozenset(), "tuned": frozenset(Tuning)}
    if each:
        for cut in Tuning:
            chosen[f"tuned-without-{cut.value}"] = frozenset(Tuning) - {cut}
    return chosen


async def turns(url: str, clients: int, count: int, readings: ReadingCounter, tag: str) -> list[float]:
    """`count` turns of short conversations from `clients` loops; the latency of each."""
    latencies: list[float] = []
    conversations = itertools.count()
    sent = 0

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal sent
        while sent < count:
            n = next(conversations)
            for text in short_script(n, readings):
                if sent >= count:
                    return
                sent += 1
                t0 = time.perf_counter()
                async with http.post(url, json={"sender": f"{tag}-{n}", "message": text}) as resp:
                    body = await resp.json()
                if resp.status != 200 or not (body.get("messages") if isinstance(body, dict) else body):
                    raise RuntimeError(f"{url} answered {resp.status}: {body}")
                latencies.append((time.perf_counter() - t0) * 1000)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return latencies


async def run(args: argparse.Namespace) -> dict[str, Any]:
    configure("console", "WARNING")
    models_dir = Settings().models_dir
    await asyncio.to_thread(train, models_dir)
    tmp = Path(tempfile.mkdtemp(prefix="resonanz-bench-engine-turn-"))
    db_url = f"sqlite:///{tmp / 'bench.db'}"
    await asyncio.to_thread(upgrade, db_url)
    db = Database(db_url)
    await seed_demo_data(db)
    gw_port = free_port()
    token, action_token = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    chosen = variants(args.each)
    engines = LocalEngines([
        EngineConfig(port=free_port(), token=token, action_url=f"http://127.0.0.1:{gw_port}/actions/webhook",
                     action_token=action_token, models_dir=models_dir, var_dir=tmp, index=i, rest_channel=True,
                     tuning=tuning, tf_threads=args.tf_threads)
        for i, tuning in enumerate(chosen.values())
    ])
    by_name = dict(zip(chosen, engines.processes, strict=True))
    base = {"port": gw_port, "DATABASE_URL": db_url, "engine_token": token, "action_token": action_token,
            "engine_timeout": 60.0, "var_dir": tmp}
    readings = ReadingCounter()
    run_id = secrets.token_hex(3)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
    await engines.start()
    try:
        print(f"waiting for {len(chosen)} engines ({', '.join(chosen)})…", file=sys.stderr, flush=True)
        await engines.wait_ready()
        for r in range(args.rounds + 1):  # round 0 warms every engine up and is not counted
            for name, proc in by_name.items():
                assert proc.proc is not None
                pid = proc.proc.pid
                async with gateway(base, db, [proc.url]):
                    url = (f"http://127.0.0.1:{gw_port}/webhooks/rest/webhook" if args.via == "gateway"
                           else f"{proc.url}/webhooks/rest/webhook")
                    count = args.turns if r else args.warmup
                    own0, cpu0, t0 = time.process_time(), cpu_seconds(pid), time.perf_counter()
                    latencies = await turns(url, args.clients, count, readings, f"{name}-{run_id}-{r}")
                    elapsed = time.perf_counter() - t0
                    engine_ms = (cpu_seconds(pid) - cpu0) / count * 1000
                    own_ms = (time.process_time() - own0) / count * 1000
                if not r:
                    continue
                rounds[name].append({
                    "engine_cpu_ms_per_turn": round(engine_ms, 2), "gateway_and_clients_cpu_ms_per_turn": round(own_ms, 2),
                    "turns_per_s": round(count / elapsed, 2), "p50_ms": summary(latencies)["p50_ms"],
                    "engine_threads": threads(pid),
                })
                print(f"round {r} {name:40} engine {engine_ms:6.1f} ms/turn  {count / elapsed:6.1f} turns/s",
                      file=sys.stderr, flush=True)
    finally:
        await engines.stop()
        await db.dispose()
    report: dict[str, Any] = {}
    for name, measured in rounds.items():
        report[name] = {
            "tuning": sorted(t.value for t in chosen[name]),
            **{k: round(statistics.median(m[k] for m in measured), 2) for k in measured[0]},
            "rounds": measured,
        }
    stock = report["stock"]["engine_cpu_ms_per_turn"]
    for name in report:
        report[name]["engine_cpu_vs_stock"] = round(report[name]["engine_cpu_ms_per_turn"] / stock, 3)
    return {
        "machine_note": "same run, rounds interleaved; the machine may be shared, so figures are noisy",
        "params": {"turns": args.turns, "rounds": args.rounds, "clients": args.clients, "via": args.via,
                   "tf_threads": args.tf_threads, "cores": os.cpu_count(), "tracker_store": "sqlite"},
        "variants": report,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=150, help="turns per variant and round")
    parser.add_argument("--warmup", type=int, default=30, help="turns per variant before the first round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--each", action="store_true", help="also one variant per cut, without that cut")
    parser.add_argument("--via", choices=("gateway", "rasa-rest"), default="gateway",
                        help="the gateway's REST channel, or Rasa's own REST webhook on the engine")
    parser.add_argument("--tf-threads", type=int, default=1, help="TensorFlow threads of the tuned engines")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "engine_turn.json")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'variant':40} {'engine CPU ms/turn':>18} {'vs stock':>8} {'turns/s':>8} {'p50 ms':>7} {'gw ms/turn':>10}")
    for name, r in report["variants"].items():
        print(f"{name:40} {r['engine_cpu_ms_per_turn']:18.1f} {r['engine_cpu_vs_stock']:8.3f} {r['turns_per_s']:8.1f} "
              f"{r['p50_ms']:7.1f} {r['gateway_and_clients_cpu_ms_per_turn']:10.1f}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
