"""Latency: the gateway's REST channel against the bare Rasa engine, in the same run.

One real engine (with Rasa's own REST channel switched on for the direct path) and one gateway
(SQLite, the embedded default) are started. The same scripted conversations — short ones, and one
of 200 turns with some not-understood messages — are sent once through the gateway and once
straight to Rasa's REST webhook, interleaved so that machine noise hits both alike.

Prints p50/p95/p99 for both paths, the gateway/direct ratio, and late turns against early turns of
the long conversation; writes everything as JSON (default `bench/results/latency.json`).

    .venv/bin/python bench/latency.py [--short 12] [--long-turns 200] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import engine_and_gateway, pct, summary  # noqa: E402
from bot.reference.demo_data import DEMO_ACCOUNTS  # noqa: E402


class ReadingCounter:
    """Meter readings must only go up: hand out plausible new values per account."""

    def __init__(self) -> None:
        self.next = {a.customer_number: a.last_reading for a in DEMO_ACCOUNTS}

    def take(self, number: str) -> int:
        self.next[number] += 3
        return self.next[number]


def short_script(i: int, readings: ReadingCounter) -> list[str]:
    """The i-th short conversation: four kinds in turn, over the demo accounts."""
    acc = DEMO_ACCOUNTS[i % len(DEMO_ACCOUNTS)]
    kind = i % 4
    if kind == 0:
        return ["Hallo", "Ich möchte meinen Zählerstand melden", acc.customer_number,
                str(readings.take(acc.customer_number)), "Danke, tschüss"]
    if kind == 1:
        return ["Hi", "I want to submit my meter reading",
                f"customer number {acc.customer_number}, reading {readings.take(acc.customer_number)}",
                "thanks, bye"]
    if kind == 2:
        return ["Gibt es eine Störung in 10115?", "Wann haben Sie geöffnet?", "Danke"]
    return ["Is there a power outage?", "20095", "How can I contact you?", "bye"]


def short_scripts(n: int, readings: ReadingCounter) -> list[list[str]]:
    return [short_script(i, readings) for i in range(n)]


def long_script(turns: int) -> list[str]:
    cycle = [
        "Hallo",
        "Wann haben Sie geöffnet?",
        "Wie kann ich Sie erreichen?",
        "Gibt es eine Störung in 80331?",
        "Warum ist meine Rechnung so hoch?",
        "Welche Zahlungsarten gibt es?",
        "Danke",
        "blorf snakiwu trrr",  # not understood (never two in a row, so no handover)
        "Wann kommt meine Rechnung?",
        "Wie sind Ihre Öffnungszeiten?",
    ]
    return [cycle[i % len(cycle)] for i in range(turns)]


async def timed_post(http: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    async with http.post(url, json=payload) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"{url} answered {resp.status}: {body}")
    return (time.perf_counter() - t0) * 1000, body


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with engine_and_gateway("latency") as stack:
        engine, settings = stack.engine, stack.settings
        gateway_url = f"{stack.base_url}/webhooks/rest/webhook"
        direct_url = f"{engine.url}/webhooks/rest/webhook"
        readings = ReadingCounter()
        results: dict[str, dict[str, list[float]]] = {
            "gateway": {"short": [], "long": []}, "direct": {"short": [], "long": []},
        }
        states: list[str] = []
        run_id = secrets.token_hex(3)
        async with aiohttp.ClientSession() as http:
            # Warm-up (first calls load lazy parts of both stacks); not measured.
            for path, url in (("gateway", gateway_url), ("direct", direct_url)):
                for text in ("Hallo", "Wann haben Sie geöffnet?"):
                    await timed_post(http, url, {"sender": f"warm-{path}-{run_id}", "message": text})
            print(f"{args.short} short conversations…", file=sys.stderr, flush=True)
            for i, script in enumerate(short_scripts(args.short, readings)):
                # Alternate which path goes first, so drift over time hits both equally.
                order = [("gateway", gateway_url), ("direct", direct_url)]
                if i % 2:
                    order.reverse()
                for path, url in order:
                    sender = f"short-{path}-{run_id}-{i}"
                    for text in script:
                        ms, body = await timed_post(http, url, {"sender": sender, "message": text})
                        results[path]["short"].append(ms)
                        if path == "gateway":
                            states.append(body["state"])
            print(f"one conversation of {args.long_turns} turns on each path…", file=sys.stderr, flush=True)
            g_sender, d_sender = f"long-gw-{run_id}", f"long-direct-{run_id}"
            for text in long_script(args.long_turns):
                ms, body = await timed_post(http, gateway_url, {"sender": g_sender, "message": text})
                results["gateway"]["long"].append(ms)
                states.append(body["state"])
                ms, _ = await timed_post(http, direct_url, {"sender": d_sender, "message": text})
                results["direct"]["long"].append(ms)

    report: dict[str, Any] = {"machine_note": "same run, same engine, sequential requests", "paths": {}}
    window = max(1, min(20, args.long_turns // 10))
    for path, r in results.items():
        long = r["long"]
        early, late = long[:window], long[-window:]
        report["paths"][path] = {
            "all": summary(r["short"] + long),
            "short": summary(r["short"]),
            "long": summary(long),
            f"long_first_{window}": summary(early),
            f"long_last_{window}": summary(late),
            "late_over_early_p50": round(pct(late, 50) / pct(early, 50), 3),
            "late_over_early_p99": round(pct(late, 99) / pct(early, 99), 3),
        }
    g, d = report["paths"]["gateway"]["all"], report["paths"]["direct"]["all"]
    report["gateway_over_direct"] = {
        "p50": round(g["p50_ms"] / d["p50_ms"], 3),
        "p95": round(g["p95_ms"] / d["p95_ms"], 3),
        "p99": round(g["p99_ms"] / d["p99_ms"], 3),
    }
    report["gateway_states_seen"] = sorted(set(states))
    report["params"] = {"short_conversations": args.short, "long_turns": args.long_turns,
                        "engine_session_turns": settings.engine_session_turns}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=12, help="number of short conversations")
    parser.add_argument("--long-turns", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latency.json")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    w = f"{max(1, min(20, args.long_turns // 10))}"
    print(f"\n{'path':8} {'p50':>8} {'p95':>8} {'p99':>8}   long: first {w} p50/p99 → last {w} p50/p99")
    for path, r in report["paths"].items():
        a, e, l = r["all"], r[f"long_first_{w}"], r[f"long_last_{w}"]
        print(f"{path:8} {a['p50_ms']:8.1f} {a['p95_ms']:8.1f} {a['p99_ms']:8.1f}   "
              f"{e['p50_ms']:.1f}/{e['p99_ms']:.1f} → {l['p50_ms']:.1f}/{l['p99_ms']:.1f} ms "
              f"(×{r['late_over_early_p50']} p50, ×{r['late_over_early_p99']} p99)")
    ratio = report["gateway_over_direct"]
    print(f"gateway/direct: p50 ×{ratio['p50']}  p95 ×{ratio['p95']}  p99 ×{ratio['p99']}")
    print(f"gateway states seen: {report['gateway_states_seen']}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
