"""Pipeline: how fast push-channel webhooks are acknowledged while the engine is busy.

The gateway runs as its own process (`resonanz run`, SQLite, Telegram and SMS enabled) against
local fake providers (connectors/fakes) and a *scripted* engine in this process that takes
`--engine-ms` per turn (default 150 ms; not the real Rasa engine, so that the turn time is known
and the gateway's own cost stands out). `--customers` customers per channel chat at once: each
sends a message, waits for the reply at the fake provider, and sends the next, so turns are in
flight all the time.

Two figures per channel, from the same messages:
- ack: the webhook POST until its HTTP answer (what Telegram and Twilio wait for);
- turn: the webhook POST until the reply reaches the fake provider.
Target: ack p99 < 20 ms while turns take 100+ ms. Prints both; writes JSON
(default `bench/results/pipeline.json`).

    .venv/bin/python bench/pipeline.py [--customers 8] [--messages 12] [--engine-ms 150] [--postgres [ADMIN_URL]]
                                       [--turn-workers M [--redis URL]] [--rate R] [--out FILE]

With `--rate R` the load is an open loop instead: R messages per second in all, at exponential
gaps, each sent whether or not the earlier ones were answered - the acknowledgement latency at a
known load. (In the closed loop the load follows the gateway: faster turns raise the rate until
the machine is saturated.)

Customers start at random moments within the first turn (`--burst`: all in the same instant,
when their first contacts - about 5 ms of the gateway's CPU each - queue behind each other).
With `--turn-workers M` the gateway is `resonanz run --workers 1 --turn-workers M`: one process
stores and acknowledges, M others answer (the gateway CPU figure then counts all of them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, summary  # noqa: E402
from bot.engine import TURN_PATH  # noqa: E402
from connectors.fakes.telegram import FakeTelegram, text_update  # noqa: E402
from connectors.fakes.twilio import FakeTwilio  # noqa: E402

SECRET = "bench-pipeline-secret"
TEXTS = ["Hallo", "Wann haben Sie geöffnet?", "Wie kann ich bezahlen?", "Danke", "Gibt es eine Störung?"]


class SlowEngine:
    """The engine's wire format; every turn takes `seconds` (turns run concurrently)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.in_flight = self.peak = 0

    async def turn(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.seconds)  # the engine's work
        finally:
            self.in_flight -= 1
        return web.json_response({
            "messages": [{"text": "re:" + body["message"]}],
            "parse_data": {"intent": {"name": "greet", "confidence": 0.97}, "entities": []},
            "slots": dict(body["set_slots"]), "active_loop": None,
        })

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"model_file": "scripted"})


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> Any:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def postgres_database(admin_url: str) -> Any:
    """A fresh PostgreSQL database for one run, dropped afterwards."""
    import asyncpg

    name = f"resonanz_bench_{random.randrange(16**8):08x}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        conn = await asyncpg.connect(admin_url)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@contextlib.asynccontextmanager
async def sqlite_database(work: Path) -> Any:
    yield f"sqlite:///{work / 'pipeline.db'}"


@contextlib.asynccontextmanager
async def gateway(engine_url: str, tg: FakeTelegram, tw: FakeTwilio, work: Path, database_url: str,
                  turn_workers: int = 0, redis_url: str | None = None) -> Any:
    """`resonanz run` against the scripted engine and the fakes; yields its URL once ready. With
    `turn_workers`, `resonanz run --workers 1 --turn-workers M` (PostgreSQL and Redis)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    twilio = {"account_sid": tw.account_sid, "auth_token": tw.auth_token, "api_base_url": tw.base_url,
              "public_url": url, "from": "+4930123456"}
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url, RESONANZ_ENGINE_URL=engine_url, RESONANZ_HOST="127.0.0.1",
        RESONANZ_PORT=str(port), RESONANZ_PUBLIC_URL=url, RESONANZ_VAR_DIR=str(work / "var"),
        RESONANZ_CONFIG_FILE=str(work / "none.yml"), RESONANZ_CONNECTORS='["telegram", "sms"]',
        RESONANZ_OFFER_CHOICE_AT_START="false", RESONANZ_LOG_LEVEL="WARNING",
        RESONANZ_CONNECTOR_OPTIONS=json.dumps({
            "telegram": {"token": tg.token, "secret": SECRET, "api_base_url": tg.base_url,
                         "file_base_url": tg.base_file_url},
            "sms": twilio}),
    )
    extra: list[str] = []
    if turn_workers:
        assert redis_url, "--turn-workers needs Redis"
        env.update(RESONANZ_REDIS_URL=redis_url, RESONANZ_REDIS_CHANNEL=f"resonanz-bench-{random.randrange(16**8):08x}")
        extra = ["--workers", "1", "--turn-workers", str(turn_workers)]
    log = (work / "gateway.log").open("wb")
    proc = await asyncio.create_subprocess_exec(str(Path(sys.executable).parent / "resonanz"), "run", "--no-train",
                                                *extra, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 120
            while True:  # polling another process's readiness
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the gateway did not start; see {work / 'gateway.log'}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url + "/readyz") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.2)
        yield url, proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        log.close()


# Every measured acknowledgement: (channel, a customer's first contact?, milliseconds).
ACKS: list[tuple[str, bool, float]] = []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its running descendants (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(FileNotFoundError):
            total += sum(cpu_seconds(int(c)) for c in (task / "children").read_text().split())
    return total


async def one_telegram(http: aiohttp.ClientSession, url: str, tg: FakeTelegram, chat: int, i: int,
                       update_ids: Any) -> tuple[float, float]:
    """Message `i` of a Telegram customer: (ack ms, turn ms)."""
    text = f"{random.choice(TEXTS)} #{chat}-{i}"
    since = len(tg.calls)
    body = json.dumps(text_update(next(update_ids), chat, text))
    t0 = time.perf_counter()
    async with http.post(url + "/webhooks/telegram/webhook", data=body, headers={
            "Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}) as r:
        await r.read()
        assert r.status == 200, r.status
    ack = (time.perf_counter() - t0) * 1000
    ACKS.append(("telegram", i == 0, ack))
    await tg.wait_for("sendMessage", lambda p: p.get("text") == "re:" + text, timeout=60, since=since)
    return ack, (time.perf_counter() - t0) * 1000


async def one_sms(http: aiohttp.ClientSession, url: str, tw: FakeTwilio, phone: str, i: int,
                  _update_ids: Any = None) -> tuple[float, float]:
    """Message `i` of an SMS customer: (ack ms, turn ms)."""
    hook = url + "/webhooks/sms/webhook"
    text = f"{random.choice(TEXTS)} #{phone}-{i}"
    since = len(tw.messages)
    headers, body = tw.signed_webhook(hook, tw.sms_params(phone, text))
    t0 = time.perf_counter()
    async with http.post(hook, data=body, headers=headers) as r:
        await r.read()
        assert r.status == 200, r.status
    ack = (time.perf_counter() - t0) * 1000
    ACKS.append(("sms", i == 0, ack))
    await tw.wait_for_message(lambda m: m.get("Body") == "re:" + text, timeout=60, since=since)
    return ack, (time.perf_counter() - t0) * 1000


async def customer(send: Any, messages: int, figures: dict[str, list[float]]) -> None:
    """A customer who sends each message once the answer to the previous one arrived."""
    for i in range(messages):
        ack, turn = await send(i)
        figures["ack"].append(ack)
        figures["turn"].append(turn)


async def at_rate(sends: list[tuple[Any, dict[str, list[float]]]], rate: float) -> None:
    """Open loop: the messages go out at `rate` per second on average (exponential gaps, as
    independent customers would write), whether or not earlier ones were answered - the load does
    not fall when the gateway slows down, and does not grow when it gets faster."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    tasks = []

    async def one(send: Any, figures: dict[str, list[float]]) -> None:
        ack, turn = await send()
        figures["ack"].append(ack)
        figures["turn"].append(turn)

    for send, figures in sends:
        due += random.expovariate(rate)
        await asyncio.sleep(max(0.0, due - loop.time()))  # pacing the load, not synchronisation
        tasks.append(asyncio.ensure_future(one(send, figures)))
    await asyncio.gather(*tasks)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    engine = SlowEngine(args.engine_ms / 1000)
    app = web.Application()
    app.router.add_post(TURN_PATH, engine.turn)
    app.router.add_get("/status", engine.status)
    figures: dict[str, dict[str, list[float]]] = {"telegram": {"ack": [], "turn": []}, "sms": {"ack": [], "turn": []}}
    with tempfile.TemporaryDirectory(prefix="resonanz-pipeline-") as tmp:
        database = postgres_database(args.postgres) if args.postgres else sqlite_database(Path(tmp))
        async with serve(app) as engine_url, FakeTelegram() as tg, FakeTwilio() as tw, database as database_url, \
                gateway(engine_url, tg, tw, Path(tmp), database_url, args.turn_workers, args.redis) as (url, pid), \
                aiohttp.ClientSession() as http:
            update_ids = iter(range(10**6, 10**9))
            # Warm-up, not counted: the first request of each path (imports) and, at the measured
            # concurrency, of each database connection (asyncpg prepares statements per
            # connection) - other customers than those measured, whose first contact still counts.
            tg_send = functools.partial(one_telegram, http, url, tg, update_ids=update_ids)
            sms_send = functools.partial(one_sms, http, url, tw)
            scratch: dict[str, list[float]] = {"ack": [], "turn": []}
            await asyncio.gather(
                *(customer(functools.partial(tg_send, 6_999_000 + c), 2, scratch) for c in range(args.customers)),
                *(customer(functools.partial(sms_send, f"+4916999{c:05d}"), 2, scratch) for c in range(args.customers)),
            )
            start, cpu_start, own_start = time.perf_counter(), cpu_seconds(pid), time.process_time()
            ACKS.clear()
            if args.rate:
                await at_rate([(functools.partial(send, i), figures[channel])
                               for i in range(args.messages) for c in range(args.customers)
                               for channel, send in (("telegram", functools.partial(tg_send, 7_000_000 + c)),
                                                     ("sms", functools.partial(sms_send, f"+4917000{c:05d}")))],
                              args.rate)
            else:
                async def later(c: Any) -> None:
                    # Customers start at random moments within one turn (not all in the same
                    # millisecond; --burst does that): arrivals as in a steady stream.
                    if not args.burst:
                        await asyncio.sleep(random.uniform(0, args.engine_ms / 1000))
                    await c

                await asyncio.gather(
                    *(later(customer(functools.partial(tg_send, 7_000_000 + c), args.messages, figures["telegram"]))
                      for c in range(args.customers)),
                    *(later(customer(functools.partial(sms_send, f"+4917000{c:05d}"), args.messages, figures["sms"]))
                      for c in range(args.customers)),
                )
            elapsed = time.perf_counter() - start
            # The gateway's own CPU time per message: unlike latency, hardly moved by what else
            # runs on the machine.
            cpu_ms = (cpu_seconds(pid) - cpu_start) * 1000 / (2 * args.customers * args.messages)
            # This process (load, fake providers, scripted engine) shares the machine's cores.
            bench_cpu_ms = (time.process_time() - own_start) * 1000 / (2 * args.customers * args.messages)
    report: dict[str, Any] = {
        "engine": f"scripted, {args.engine_ms} ms per turn (not the real Rasa engine)",
        "gateway": "resonanz run as its own process, " + ("PostgreSQL" if args.postgres else "SQLite")
                   + (f", --workers 1 --turn-workers {args.turn_workers} (Redis)" if args.turn_workers else ""),
        "customers_per_channel": args.customers, "messages_per_customer": args.messages,
        "load": (f"open loop: {args.rate} messages per second (exponential gaps), whether answered or not" if args.rate
                 else "closed loop: each customer sends once the previous answer arrived"),
        "start": "all customers at once (--burst)" if args.burst else "each customer at a random moment within one turn",
        "engine_turns_in_flight_peak": engine.peak, "seconds": round(elapsed, 1),
        "messages_per_second": round(2 * args.customers * args.messages / elapsed, 1),
        "gateway_cpu_ms_per_message": round(cpu_ms, 2),
        "bench_cpu_ms_per_message": round(bench_cpu_ms, 2),
        "target": "ack p99 < 20 ms while turns take 100+ ms",
    }
    for channel, values in figures.items():
        report[channel] = {"ack": summary(values["ack"]), "turn": summary(values["turn"])}
    all_ack = figures["telegram"]["ack"] + figures["sms"]["ack"]
    report["ack_all"] = summary(all_ack)
    # A first contact creates the customer, their identity and conversation (the general path).
    report["ack_first_contact"] = summary([ms for _, first, ms in ACKS if first])
    report["ack_known_sender"] = summary([ms for _, first, ms in ACKS if not first])
    for channel in ("telegram", "sms"):
        report[channel]["ack_first_contact"] = sorted(round(ms, 1) for c, first, ms in ACKS if first and c == channel)
    report["target_met"] = report["ack_all"]["p99_ms"] < 20 and min(figures["telegram"]["turn"] + figures["sms"]["turn"]) >= 100
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=8, help="customers per channel, chatting at once")
    parser.add_argument("--messages", type=int, default=12, help="messages each customer sends")
    parser.add_argument("--engine-ms", type=int, default=150, help="how long the scripted engine takes per turn")
    parser.add_argument("--postgres", metavar="ADMIN_URL", nargs="?", const="postgresql://postgres@127.0.0.1:5432/test",
                        help="use a fresh PostgreSQL database (created through ADMIN_URL, dropped afterwards)")
    parser.add_argument("--rate", type=float, default=0, metavar="R",
                        help="open loop: send R messages per second in all (exponential gaps), not waiting for answers")
    parser.add_argument("--burst", action="store_true",
                        help="all customers start in the same instant (their first contacts queue on the gateway's core)")
    parser.add_argument("--turn-workers", type=int, default=0, metavar="M",
                        help="resonanz run --workers 1 --turn-workers M (needs --postgres and Redis)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis for --turn-workers")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pipeline.json")
    args = parser.parse_args()
    if args.turn_workers and not args.postgres:
        parser.error("--turn-workers needs --postgres")
    report = asyncio.run(run(args))
    for channel in ("telegram", "sms"):
        a, t = report[channel]["ack"], report[channel]["turn"]
        print(f"{channel:9} ack  p50 {a['p50_ms']:7.1f} ms  p99 {a['p99_ms']:7.1f} ms   "
              f"turn p50 {t['p50_ms']:7.1f} ms  p99 {t['p99_ms']:7.1f} ms   (n={a['n']})")
    print(f"all acks p50 {report['ack_all']['p50_ms']} ms, p99 {report['ack_all']['p99_ms']} ms; "
          f"engine peak {report['engine_turns_in_flight_peak']} turns in flight; "
          f"{report['messages_per_second']} messages/s; gateway CPU {report['gateway_cpu_ms_per_message']} ms "
          f"per message (this bench's own: {report['bench_cpu_ms_per_message']} ms); target met: {report['target_met']}")
    print(f"  known senders p50 {report['ack_known_sender']['p50_ms']} ms, p99 {report['ack_known_sender']['p99_ms']} ms; "
          f"first contacts p50 {report['ack_first_contact']['p50_ms']} ms, p99 {report['ack_first_contact']['p99_ms']} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
