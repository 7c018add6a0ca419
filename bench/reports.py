"""Report timings on a year of generated history on PostgreSQL (issue 14: each report over
1 million messages in under 2 s).

    .venv/bin/python bench/reports.py [--messages 1000000] [--keep]

A fresh database is created on RESONANZ_TEST_PG_URL's server (the tests' server) and dropped at the
end. The history is generated inside PostgreSQL (generate_series), ten messages a conversation:
conversations spread over 2025, a quarter of them handed over (to four queues, twenty agents),
ratings, readings and instalment changes. Each report runs over the whole year, then over one
month with a channel filter; the best of three runs is kept. Figures go to stdout and
bench/results/reports.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bot.reference.report_tasks  # noqa: E402,F401  (the reference bot's task counters)
from resonanz.reports import queries  # noqa: E402
from resonanz.reports.queries import Filters  # noqa: E402
from resonanz.settings import Settings  # noqa: E402
from resonanz.store import Database  # noqa: E402
from resonanz.store.migrate import upgrade  # noqa: E402

PG_ADMIN_URL = os.environ.get("RESONANZ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def create_database() -> tuple[str, Callable[[], Awaitable[None]]]:
    """A fresh database on the test server, and a function that drops it."""
    import asyncpg

    admin = PG_ADMIN_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"resonanz_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()

    async def drop() -> None:
        c = await asyncpg.connect(admin, timeout=5)
        try:
            await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await c.close()

    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}", drop

TARGET_S = 2.0

GENERATE = """
INSERT INTO queues (id, name, skill, language, business_hours, created_at)
SELECT md5('q' || i), q.name, q.skill, q.lang, q.hours::json, now()
FROM (VALUES (1, 'billing-de', 'billing', 'de', '{"timezone": "Europe/Berlin", "days": {"mon": [["08:00", "18:00"]], "tue": [["08:00", "18:00"]], "wed": [["08:00", "18:00"]], "thu": [["08:00", "18:00"]], "fri": [["08:00", "18:00"]]}}'),
             (2, 'billing-en', 'billing', 'en', '{}'), (3, 'general-de', 'general', 'de', '{}'),
             (4, 'general-en', 'general', 'en', '{}')) AS q(i, name, skill, lang, hours);

INSERT INTO agents (id, email, display_name, password_hash, role, status, capacity, skills, languages, active, created_at)
SELECT md5('a' || i), 'agent' || i || '@example.org', 'Agent ' || i, 'x', 'agent', 'offline', 3, '[]', '[]', true, now()
FROM generate_series(1, 20) AS i;

INSERT INTO customers (id, language, created_at)
SELECT md5('cu' || i), CASE WHEN i % 3 = 0 THEN 'en' ELSE 'de' END, now() FROM generate_series(1, :convs) AS i;

INSERT INTO conversations (id, customer_id, channel, address, state, active_loop, language, slots, engine_session, engine_turns,
                           consecutive_fallbacks, fallback_count, version, created_at, updated_at)
SELECT md5('c' || i), md5('cu' || i), (ARRAY['web', 'telegram', 'whatsapp', 'sms'])[1 + i % 4], '{}', 'closed',
       CASE WHEN i % 9 = 1 THEN 'meter_reading_form' END,
       CASE WHEN i % 3 = 0 THEN 'en' ELSE 'de' END, '{}', 0, 0, 0, 0, 0,
       timestamptz '2025-01-01 00:00+00' + (i::float8 / :convs) * interval '365 days',
       timestamptz '2025-01-01 00:00+00' + (i::float8 / :convs) * interval '365 days'
FROM generate_series(1, :convs) AS i;

INSERT INTO handovers (id, conversation_id, customer_id, queue_id, reason, trigger, status, context, summary,
                       declined_by, agent_id, accepted_at, closed_at, rating, version, created_at)
SELECT md5('h' || i), md5('c' || i), md5('cu' || i), md5('q' || (1 + i % 4)),
       (ARRAY['customer_request', 'customer_preference', 'bot_stuck', 'complex_matter', 'customer_upset',
              'engine_unavailable', 'agent_takeover'])[1 + (i / 4) % 7],
       (ARRAY['intent:human', 'preference:human', 'fallbacks:3', 'intent:complaint', 'sentiment:0.80',
              'engine:timeout', 'agent:take_over'])[1 + (i / 4) % 7],
       CASE WHEN i % 10 = 0 THEN 'abandoned' ELSE 'closed' END, '{}', '',
       CASE WHEN i % 7 = 0 THEN '["x"]'::json ELSE '[]'::json END,
       CASE WHEN i % 10 = 0 THEN NULL ELSE md5('a' || (1 + i % 20)) END,
       CASE WHEN i % 10 = 0 THEN NULL ELSE c.created_at + interval '3 min' + (i % 50) * interval '10 s' END,
       c.created_at + interval '30 min',
       CASE WHEN i % 10 = 0 OR i % 5 = 1 THEN NULL ELSE 1 + (i * 7) % 5 END,
       0, c.created_at + interval '2 min'
FROM generate_series(4, :convs, 4) AS i JOIN conversations c ON c.id = md5('c' || i);

INSERT INTO messages (public_id, conversation_id, customer_id, channel, direction, author, text, buttons, attachments,
                      metadata, parse_data, status, attempts, created_at)
SELECT md5('m' || c.i || '.' || k), md5('c' || c.i), md5('cu' || c.i), (ARRAY['web', 'telegram', 'whatsapp', 'sms'])[1 + c.i % 4],
       CASE WHEN k % 2 = 0 THEN 'in' ELSE 'out' END,
       CASE WHEN k % 2 = 0 THEN 'customer' WHEN c.i % 4 = 0 AND k >= 5 THEN 'agent' ELSE 'bot' END,
       'text', '[]', '[]', '{}',
       CASE WHEN k % 2 = 0 AND NOT (c.i % 4 = 0 AND k >= 5) THEN json_build_object(
           'intent', (ARRAY['greet', 'meter_reading', 'outage', 'instalment', 'bill_question', 'human', 'thanks',
                            'goodbye', 'inform', 'affirm', 'nlu_fallback', 'out_of_scope'])[1 + (c.i * 3 + k) % 12],
           'confidence', ((c.i * 13 + k * 7) % 100) / 100.0,
           'slots', json_build_object('requested_slot', CASE WHEN c.i % 9 = 1 THEN 'meter_reading' END),
           'active_loop', CASE WHEN c.i % 9 = 1 AND k = 8 THEN 'meter_reading_form' END)
       END,
       CASE WHEN k % 2 = 0 THEN 'processed' ELSE 'sent' END, 0,
       timestamptz '2025-01-01 00:00+00' + (c.i::float8 / :convs) * interval '365 days' + k * interval '30 s'
FROM generate_series(1, :convs) AS c(i) CROSS JOIN generate_series(0, 9) AS k;

UPDATE messages SET intent = parse_data ->> 'intent', intent_confidence = (parse_data ->> 'confidence')::float8
WHERE direction = 'in' AND parse_data IS NOT NULL;

INSERT INTO accounts (customer_number, name, postcode, meter_number, last_reading, last_reading_at, yearly_consumption,
                      monthly_instalment, instalment_min, instalment_max)
SELECT 'K' || i, 'Kunde ' || i, '10115', 'M' || i, 1000, now(), 3000, 50, 20, 200 FROM generate_series(1, 1000) AS i;

INSERT INTO meter_readings (customer_number, value, conversation_id, submitted_at)
SELECT 'K' || (1 + i % 1000), 1000 + i, md5('c' || i), c.created_at + interval '4 min'
FROM generate_series(2, :convs, 5) AS i JOIN conversations c ON c.id = md5('c' || i);

INSERT INTO instalment_changes (customer_number, old_amount, new_amount, conversation_id, changed_at)
SELECT 'K' || (1 + i % 1000), 50, 60, md5('c' || i), c.created_at + interval '4 min'
FROM generate_series(3, :convs, 20) AS i JOIN conversations c ON c.id = md5('c' || i);
"""


async def generate(db: Database, messages: int) -> dict[str, int]:
    from sqlalchemy import text

    convs = messages // 10
    async with db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM queues"))  # none in a fresh database; a default one would clash
        for stmt in GENERATE.split(";\n"):
            if stmt.strip():
                await conn.execute(text(stmt.replace(":convs", str(convs))))
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
        counts = {}
        for table in ("conversations", "messages", "handovers", "meter_readings", "instalment_changes"):
            counts[table] = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
    return counts


async def time_report(db: Database, name: str, f: Filters, settings: Settings) -> tuple[float, dict]:
    best = float("inf")
    result: dict = {}
    for _ in range(3):
        t0 = time.perf_counter()
        if name == "intents":
            result = await queries.intents(db, f, fallback_intents=settings.fallback_intents,
                                           fallback_confidence=settings.fallback_confidence)
        else:
            result = await getattr(queries, name)(db, f)
        best = min(best, time.perf_counter() - t0)
    return best, result


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = ap.parse_args()
    settings = Settings(DATABASE_URL="sqlite:///unused.db")
    url, drop = await create_database()
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    try:
        t0 = time.perf_counter()
        counts = await generate(db, args.messages)
        generated_s = time.perf_counter() - t0
        print(f"generated in {generated_s:.1f} s: {counts}")
        runs = {
            "year": Filters.days("2025-01-01", "2025-12-31"),
            "month_web": Filters.days("2025-06-01", "2025-06-30", channel="web"),
        }
        results: dict[str, dict] = {}
        for run, f in runs.items():
            for name in queries.REPORTS:
                seconds, tables = await time_report(db, name, f, settings)
                key = f"{name}/{run}"
                results[key] = {"seconds": round(seconds, 3), "under_target": seconds < TARGET_S,
                                "rows": {t: len(v.rows) for t, v in tables.items()}}
                print(f"{key:28s} {seconds * 1000:8.1f} ms  " + ("ok" if seconds < TARGET_S else "SLOW"))
                if run == "year":
                    for t, v in tables.items():
                        print(f"    {t}: {v.columns}")
                        for row in v.rows[:6]:
                            print(f"      {row}")
                        results[key].setdefault("figures", {})[t] = {"columns": v.columns, "rows": v.rows[:10]}
        out = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
            "python": platform.python_version(), "cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 1),
            "target_seconds": TARGET_S, "generated": counts,
            "generate_seconds": round(generated_s, 1), "reports": results,
        }
        path = ROOT / "bench" / "results" / "reports.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"wrote {path} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        slow = [k for k, v in results.items() if not v["under_target"]]
        return 1 if slow else 0
    finally:
        await db.dispose()
        if args.keep:
            print("kept:", url)
        else:
            await drop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
