"""/metrics scrape cost: the database gauges' queries (and the rendering) on a database with a
year-like history, on SQLite and PostgreSQL (127.0.0.1:5432, skipped when unreachable).

Generated: `--messages` messages (95 % answered or sent, the rest waiting, pending or failed),
one conversation per 20 messages, handovers (most closed, some waiting in 8 queues), 50 agents.

    .venv/bin/python bench/metrics_scrape.py [--messages 200000] [--scrapes 30] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from bench.common import summary  # noqa: E402
from resonanz.metrics import Metrics  # noqa: E402
from resonanz.store import Database  # noqa: E402
from resonanz.store.migrate import upgrade  # noqa: E402
from resonanz.store.models import Agent, Conversation, Customer, Handover, Message, Queue, utcnow  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


async def fill(db: Database, messages: int) -> None:
    now = utcnow()
    rnd = random.Random(7)
    conversations = max(1, messages // 20)
    customers = [{"id": uuid.uuid4().hex, "created_at": now} for _ in range(conversations)]
    convs = [{"id": uuid.uuid4().hex, "customer_id": c["id"], "channel": "telegram", "address": {},
              "state": "closed", "created_at": now} for c in customers]
    queues = [{"id": uuid.uuid4().hex, "name": f"q{i}", "skill": f"s{i}", "language": "de"} for i in range(8)]
    agents = [{"id": uuid.uuid4().hex, "email": f"a{i}@x.de", "display_name": "A", "password_hash": "x",
               "status": rnd.choice(["online", "away", "offline"])} for i in range(50)]
    handovers = [{"id": uuid.uuid4().hex, "conversation_id": c["id"], "customer_id": c["customer_id"],
                  "queue_id": rnd.choice(queues)["id"], "reason": "customer_request", "trigger": "intent",
                  "status": "waiting" if rnd.random() < 0.01 else "closed",
                  "created_at": now - timedelta(seconds=rnd.randint(0, 3600))} for c in convs[: conversations // 3]]
    async with db.session() as s:
        for table, rows in ((Customer, customers), (Conversation, convs), (Queue, queues), (Agent, agents),
                            (Handover, handovers)):
            for i in range(0, len(rows), 5000):
                await s.execute(insert(table), rows[i:i + 5000])
    batch: list[dict[str, Any]] = []
    for n in range(messages):
        conv = convs[n % conversations]
        inbound = n % 2 == 0
        roll = rnd.random()
        status = (("processed" if roll > 0.001 else "received") if inbound
                  else "sent" if roll > 0.05 else rnd.choice(["pending", "failed", "delivered", "read", "unknown"]))
        batch.append({"public_id": uuid.uuid4().hex, "conversation_id": conv["id"], "customer_id": conv["customer_id"],
                      "channel": "telegram", "direction": "in" if inbound else "out",
                      "author": "customer" if inbound else "bot", "text": "x" * 40, "status": status,
                      "created_at": now - timedelta(seconds=rnd.randint(0, 365 * 86400))})
        if len(batch) == 5000 or n == messages - 1:
            async with db.session() as s:
                await s.execute(insert(Message), batch)
            batch = []


async def measure(url: str, messages: int, scrapes: int) -> dict[str, Any]:
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        started = time.perf_counter()
        await fill(db, messages)
        filled = time.perf_counter() - started
        metrics = Metrics()
        refresh, render = [], []
        for _ in range(scrapes):
            t0 = time.perf_counter()
            await metrics.refresh(db, None)
            t1 = time.perf_counter()
            metrics.render()
            refresh.append((t1 - t0) * 1000)
            render.append((time.perf_counter() - t1) * 1000)
        assert metrics.database_up._value.get() == 1  # noqa: SLF001 - the queries succeeded
        return {"messages": messages, "fill_seconds": round(filled, 1),
                "refresh_ms": summary(refresh), "render_ms": summary(render)}
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "metrics_scrape.json"))
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await measure(f"sqlite:///{tmp}/scrape.db", args.messages, args.scrapes)
    print("sqlite    ", json.dumps(results["sqlite"]))
    try:
        import asyncpg

        admin = await asyncpg.connect(PG_ADMIN, timeout=5)
    except Exception as exc:  # noqa: BLE001
        print(f"postgresql skipped: {exc}")
    else:
        name = f"resonanz_bench_{uuid.uuid4().hex[:8]}"
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            results["postgresql"] = await measure(f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", args.messages, args.scrapes)
            print("postgresql", json.dumps(results["postgresql"]))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
