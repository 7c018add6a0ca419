"""Relay: a web chat customer on gateway A and an agent on gateway B, in real time.

Two gateway processes (`resonanz run`, web chat only) share a fresh PostgreSQL database (dropped
afterwards) and Redis (its own channel prefix per run). A scripted engine in this process only
hands each conversation to a person (no Rasa: the conversations are with agents). `--sockets`
web chat customers connect to A, each with its own session; the first `--conversations` of them
ask for a person, and `--agents` agents (API tokens, live stream /api/v1/stream on B) accept
them on B. Then every conversation runs `--messages` round trips at once, with a think time of
`--pause` seconds (±50 %) before each message:

- customer → agent: the frame sent on A's socket until the agent's stream on B shows it;
- agent → customer: the reply POSTed to B until the customer's socket on A receives it.

Both are measured in this process with one clock. Beside them, "from stored": from the message's
own timestamp (taken by the gateway when it stored the message) until it arrived - the part after
the HTTP request, the authentication and the write (the same machine's wall clock on both sides). Target: p99 < 20 ms at 200 conversations.
Memory: the resident set (VmRSS) of gateway A before the sockets connect, after they all said
hello (idle sockets), and after the conversations; per socket = the delta / sockets.

    .venv/bin/python bench/relay.py [--conversations 200] [--sockets N (default: = conversations)]
                                    [--messages 10] [--pause 10] [--agents 10]
                                    [--postgres ADMIN_URL] [--redis URL] [--out FILE]

`--sockets 1000` is the 1,000-socket run (writes bench/results/sockets.json unless --out says).
`--hop-only` measures the Redis hop alone: two web chat relays (connectors/webchat/relay.py) in
this process, one holding `--conversations` sessions, the other publishing frames to them with
the same think time; no gateway, no database (bench/results/relay-hop.json).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, summary  # noqa: E402
from bench.pipeline import postgres_database, serve  # noqa: E402
from bot.engine import TURN_PATH  # noqa: E402

WAIT = 60.0  # seconds any single expected frame may take before the run is called failed


class PersonEngine:
    """The engine's wire format: every message is a wish to talk to a person."""

    async def turn(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({
            "messages": [{"text": "Einen Moment, ich verbinde Sie."}],
            "parse_data": {"intent": {"name": "request_human", "confidence": 0.99}, "entities": []},
            "slots": dict(body["set_slots"]), "active_loop": None,
        })

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"model_file": "scripted"})


def rss_kib(pid: int) -> int:
    """The resident set of a process (Linux), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Gateway:
    """`resonanz run` as its own process (web chat only, the scripted engine, shared database and
    Redis)."""

    def __init__(self, name: str, work: Path, *, engine_url: str, database_url: str, redis_url: str, channel: str) -> None:
        self.name, self.work = name, work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.update(
            DATABASE_URL=database_url, RESONANZ_ENGINE_URL=engine_url, RESONANZ_HOST="127.0.0.1",
            RESONANZ_PORT=str(self.port), RESONANZ_PUBLIC_URL=self.url, RESONANZ_VAR_DIR=str(work / f"var-{name}"),
            RESONANZ_CONFIG_FILE=str(work / "none.yml"), RESONANZ_CONNECTORS='["webchat"]',
            RESONANZ_OFFER_CHOICE_AT_START="false", RESONANZ_LOG_LEVEL="WARNING",
            RESONANZ_REDIS_URL=redis_url, RESONANZ_REDIS_CHANNEL=channel,
            # All customers of the benchmark come from 127.0.0.1.
            RESONANZ_CONNECTOR_OPTIONS=json.dumps({"webchat": {"rate_limit_ip": "1000000 per minute",
                                                               "rate_limit_socket": "1000 per 10 seconds"}}),
        )
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = work / f"gateway-{name}.log"

    async def __aenter__(self) -> Gateway:
        self._log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "resonanz"), "run", "--no-train",
            env=self.env, stdout=self._log, stderr=asyncio.subprocess.STDOUT)
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 120
            while True:  # polling another process's readiness
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gateway {self.name} did not start; see {self.log_path}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(self.url + "/readyz") as r:
                        if r.status == 200:
                            return self
                await asyncio.sleep(0.2)

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        self._log.close()

    @property
    def rss_kib(self) -> int:
        assert self.proc is not None
        return rss_kib(self.proc.pid)

    @property
    def cpu_s(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)


@dataclass(frozen=True)
class Arrival:
    perf: float  # time.perf_counter() when the frame was read
    wall: float  # time.time() then
    stored: str  # the message's own ISO timestamp (when the gateway stored it)

    def since_stored_ms(self) -> float:
        stored = datetime.fromisoformat(self.stored)
        if stored.tzinfo is None:
            stored = stored.replace(tzinfo=UTC)
        return (self.wall - stored.timestamp()) * 1000


class Customer:
    """A web chat socket on gateway A; a reader task resolves what is awaited."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.waiting: dict[str, asyncio.Future[Arrival]] = {}  # agent text -> when it arrived
        self.acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            now, wall = time.perf_counter(), time.time()
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame["type"] == "message" and frame["author"] == "agent":
                fut = self.waiting.pop(frame["text"], None)
                if fut is not None and not fut.done():
                    fut.set_result(Arrival(now, wall, frame["timestamp"]))
            elif frame["type"] == "ack":
                self.acks.put_nowait(frame)
            elif frame["type"] == "error":
                print(f"error frame: {frame}", file=sys.stderr)


class AgentStream:
    """An agent's /api/v1/stream on gateway B; resolves the customers' messages it shows."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.waiting: dict[str, asyncio.Future[Arrival]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            now, wall = time.perf_counter(), time.time()
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            if event.get("type") == "message" and event["message"].get("author") == "customer":
                fut = self.waiting.pop(event["message"]["text"], None)
                if fut is not None and not fut.done():
                    fut.set_result(Arrival(now, wall, event["message"]["timestamp"]))


async def connect_customer(http: aiohttp.ClientSession, gw: Gateway) -> Customer:
    ws = await http.ws_connect(gw.url + "/webchat/ws", headers={"Origin": gw.url}, heartbeat=None)
    await ws.send_json({"type": "hello", "language": "de"})
    issued = await ws.receive_json(timeout=WAIT)
    assert issued["type"] == "session", issued
    history = await ws.receive_json(timeout=WAIT)
    assert history["type"] == "history", history
    return Customer(ws)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from sqlalchemy import select

    from handover.auth import create_agent, issue_api_token
    from resonanz.store import Database
    from resonanz.store.migrate import upgrade
    from resonanz.store.models import Handover

    engine = PersonEngine()
    engine_app = web.Application()
    engine_app.router.add_post(TURN_PATH, engine.turn)
    engine_app.router.add_get("/status", engine.status)
    channel = f"resonanz:bench:{uuid.uuid4().hex[:12]}"
    to_agent: list[float] = []
    to_customer: list[float] = []
    post_ms: list[float] = []
    stored_to_agent: list[float] = []
    stored_to_customer: list[float] = []
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="resonanz-relay-") as tmp:
        work = Path(tmp)
        async with serve(engine_app) as engine_url, postgres_database(args.postgres) as database_url:
            await asyncio.to_thread(upgrade, database_url)  # once, before two processes start
            db = Database(database_url)
            gw_kw = dict(engine_url=engine_url, database_url=database_url, redis_url=args.redis, channel=channel)
            conn = aiohttp.TCPConnector(limit=0)
            async with Gateway("a", work, **gw_kw) as a, Gateway("b", work, **gw_kw) as b, \
                    aiohttp.ClientSession(connector=conn) as http:
                tokens = []
                for i in range(args.agents):
                    agent = await create_agent(db, email=f"agent{i}@bench.example", password="bench password 123",
                                               display_name=f"Agent {i}", capacity=1000)
                    tokens.append(await issue_api_token(db, agent.id))
                streams = []
                for token in tokens:
                    ws = await http.ws_connect(b.url + "/api/v1/stream", headers={"Authorization": f"Bearer {token}"})
                    streams.append(AgentStream(ws))

                rss_start = a.rss_kib
                opening = asyncio.Semaphore(50)

                async def open_one() -> Customer:
                    async with opening:
                        return await connect_customer(http, a)

                t0 = time.perf_counter()
                customers = await asyncio.gather(*(open_one() for _ in range(args.sockets)))
                connect_s = time.perf_counter() - t0
                rss_idle = a.rss_kib
                print(f"{args.sockets} sockets on A in {connect_s:.1f} s; A's RSS {rss_start / 1024:.1f} → "
                      f"{rss_idle / 1024:.1f} MiB", file=sys.stderr, flush=True)

                talking = customers[:args.conversations]

                async def ask_for_person(c: Customer) -> str:
                    async with opening:
                        await c.ws.send_json({"type": "message", "text": "Ich möchte einen Menschen sprechen",
                                              "client_id": uuid.uuid4().hex})
                        ack = await asyncio.wait_for(c.acks.get(), WAIT)
                    assert ack["state"] == "queued", ack
                    return ack["conversation_id"]

                conversation_ids = await asyncio.gather(*(ask_for_person(c) for c in talking))
                async with db.session() as s:
                    rows = (await s.execute(select(Handover.conversation_id, Handover.id)
                                            .where(Handover.conversation_id.in_(conversation_ids)))).all()
                handover_of = dict(rows)
                assert len(handover_of) == len(conversation_ids), "not every conversation has a handover"

                async def accept(i: int, conversation_id: str) -> None:
                    async with opening:
                        headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
                        async with http.post(f"{b.url}/api/v1/handovers/{handover_of[conversation_id]}/accept",
                                             headers=headers) as r:
                            assert r.status == 200, await r.text()

                await asyncio.gather(*(accept(i, cid) for i, cid in enumerate(conversation_ids)))
                print(f"{len(talking)} conversations handed to {len(tokens)} agents on B", file=sys.stderr, flush=True)

                async def think() -> None:
                    await asyncio.sleep(args.pause * random.uniform(0.5, 1.5))  # a person's pause, not synchronisation

                async def converse(i: int, c: Customer, conversation_id: str, warm_up: bool) -> None:
                    stream = streams[i % len(streams)]
                    headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
                    url = f"{b.url}/api/v1/handovers/{handover_of[conversation_id]}/messages"
                    rounds = 1 if warm_up else args.messages
                    for n in range(rounds):
                        if not warm_up:
                            await think()
                        text = f"Kunde {i} Nachricht {n} {uuid.uuid4().hex[:6]}"
                        seen = stream.waiting[text] = asyncio.get_running_loop().create_future()
                        start = time.perf_counter()
                        await c.ws.send_json({"type": "message", "text": text, "client_id": uuid.uuid4().hex})
                        arrived = await asyncio.wait_for(seen, WAIT)
                        await asyncio.wait_for(c.acks.get(), WAIT)
                        if not warm_up:
                            to_agent.append((arrived.perf - start) * 1000)
                            stored_to_agent.append(arrived.since_stored_ms())
                            await think()
                        text = f"Agent an {i} Antwort {n} {uuid.uuid4().hex[:6]}"
                        pushed = c.waiting[text] = asyncio.get_running_loop().create_future()
                        start = time.perf_counter()
                        async with http.post(url, json={"text": text}, headers=headers) as r:
                            answered = time.perf_counter()
                            assert r.status == 201, await r.text()
                        arrived = await asyncio.wait_for(pushed, WAIT)
                        if not warm_up:
                            to_customer.append((arrived.perf - start) * 1000)
                            stored_to_customer.append(arrived.since_stored_ms())
                            post_ms.append((answered - start) * 1000)

                # Warm-up (not counted): each conversation once, one after the other.
                for i, (c, cid) in enumerate(zip(talking, conversation_ids, strict=True)):
                    if i >= 5:
                        break
                    await converse(i, c, cid, True)
                t0, cpu_a, cpu_b = time.perf_counter(), a.cpu_s, b.cpu_s
                await asyncio.gather(*(converse(i, c, cid, False)
                                       for i, (c, cid) in enumerate(zip(talking, conversation_ids, strict=True))))
                elapsed = time.perf_counter() - t0
                cpu_a, cpu_b = a.cpu_s - cpu_a, b.cpu_s - cpu_b
                rss_end = a.rss_kib
                for c in customers:
                    await c.ws.close()
                for s in streams:
                    await s.ws.close()
            await db.dispose()

    messages = len(to_agent) + len(to_customer)
    report = {
        "topology": "two `resonanz run` processes (web chat), one PostgreSQL database, Redis pub/sub; "
                    "customers' sockets on A, agents (API + /api/v1/stream) on B; this client on the same machine",
        "machine": f"{os.cpu_count()} cores, shared (other work running: figures are noisy)",
        "conversations": len(talking), "sockets_on_a": args.sockets, "agents": len(tokens),
        "round_trips_per_conversation": args.messages, "pause_s": f"{args.pause} ±50 % before each message",
        "seconds": round(elapsed, 1), "messages_per_second": round(messages / elapsed, 1),
        "customer_to_agent": summary(to_agent),
        "agent_to_customer": summary(to_customer),
        "agent_post_answered": summary(post_ms),
        # Less noisy than latency on a shared machine: what each message costs the gateways.
        "gateway_cpu_ms_per_round_trip": {"a": round(cpu_a * 1000 / max(len(to_agent), 1), 2),
                                          "b": round(cpu_b * 1000 / max(len(to_agent), 1), 2),
                                          "a_cores_busy": round(cpu_a / elapsed, 2), "b_cores_busy": round(cpu_b / elapsed, 2)},
        "from_stored": {"customer_to_agent": summary(stored_to_agent), "agent_to_customer": summary(stored_to_customer)},
        "memory_a": {
            "rss_before_sockets_mib": round(rss_start / 1024, 1),
            "rss_sockets_idle_mib": round(rss_idle / 1024, 1),
            "rss_after_conversations_mib": round(rss_end / 1024, 1),
            "per_idle_socket_kib": round((rss_idle - rss_start) / args.sockets, 1),
            "per_socket_after_conversations_kib": round((rss_end - rss_start) / args.sockets, 1),
            "sockets_connected_in_s": round(connect_s, 1),
        },
        "target": "p99 < 20 ms both ways",
    }
    report["target_met"] = report["customer_to_agent"]["p99_ms"] < 20 and report["agent_to_customer"]["p99_ms"] < 20
    return report


async def hop_only(args: argparse.Namespace) -> dict[str, Any]:
    from connectors.webchat.relay import RedisRelay

    prefix = f"resonanz:bench:{uuid.uuid4().hex[:12]}"
    latencies: list[float] = []
    waiting: dict[str, asyncio.Future[float]] = {}

    async def deliver(session_id: str, frame: dict[str, Any]) -> None:
        fut = waiting.pop(frame["id"], None)
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())

    async def nothing(sessions: Any) -> None:
        return None

    holder = RedisRelay(args.redis, prefix, deliver=deliver, resync=nothing)
    sender = RedisRelay(args.redis, prefix, deliver=deliver, resync=nothing)
    await holder.start()
    await sender.start()
    sessions = [uuid.uuid4().hex for _ in range(args.conversations)]
    await asyncio.gather(*(holder.join(s) for s in sessions))

    async def talk(session_id: str) -> None:
        for _ in range(2 * args.messages):
            await asyncio.sleep(args.pause * random.uniform(0.5, 1.5))  # a person's pause, not synchronisation
            frame_id = uuid.uuid4().hex
            arrived = waiting[frame_id] = asyncio.get_running_loop().create_future()
            start = time.perf_counter()
            sender.publish(session_id, {"type": "message", "id": frame_id, "text": "x" * 80})
            latencies.append((await asyncio.wait_for(arrived, WAIT) - start) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(talk(s) for s in sessions))
    elapsed = time.perf_counter() - t0
    await sender.close()
    await holder.close()
    return {
        "what": "the Redis hop alone: RedisRelay.publish on one relay until the other's deliver callback, "
                "both in this process (no gateway, no database)",
        "sessions": len(sessions), "frames_per_session": 2 * args.messages, "pause_s": f"{args.pause} ±50 %",
        "frames_per_second": round(len(latencies) / elapsed, 1), "hop": summary(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=200, help="conversations between a customer and an agent")
    parser.add_argument("--sockets", type=int, default=None, help="web chat sockets on A (default: one per conversation)")
    parser.add_argument("--messages", type=int, default=10, help="round trips per conversation")
    parser.add_argument("--pause", type=float, default=10.0, help="think time before each message, seconds (±50 %%)")
    parser.add_argument("--agents", type=int, default=10, help="agents on B (the conversations are shared among them)")
    parser.add_argument("--postgres", metavar="ADMIN_URL", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a fresh database is created through ADMIN_URL and dropped afterwards")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results/relay.json (sockets.json when --sockets exceeds --conversations)")
    parser.add_argument("--hop-only", action="store_true", help="measure the Redis hop alone (no gateways)")
    args = parser.parse_args()
    if args.hop_only:
        report = asyncio.run(hop_only(args))
        h = report["hop"]
        print(f"Redis hop: p50 {h['p50_ms']:.2f} ms  p99 {h['p99_ms']:.2f} ms  max {h['max_ms']:.2f} ms  (n={h['n']}, "
              f"{report['frames_per_second']} frames/s)")
        out = args.out or ROOT / "bench" / "results" / "relay-hop.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        return
    args.sockets = max(args.sockets or args.conversations, args.conversations)
    out = args.out or ROOT / "bench" / "results" / ("sockets.json" if args.sockets > args.conversations else "relay.json")
    report = asyncio.run(run(args))
    for key, label in (("customer_to_agent", "customer → agent"), ("agent_to_customer", "agent → customer")):
        f = report[key]
        g = report["from_stored"][key]
        print(f"{label:17} p50 {f['p50_ms']:6.1f} ms  p99 {f['p99_ms']:6.1f} ms  max {f['max_ms']:6.1f} ms  (n={f['n']});"
              f"  from stored p50 {g['p50_ms']:6.1f} ms  p99 {g['p99_ms']:6.1f} ms")
    m = report["memory_a"]
    print(f"{report['conversations']} conversations, {report['sockets_on_a']} sockets on A, "
          f"{report['messages_per_second']} messages/s; A's RSS {m['rss_before_sockets_mib']} → "
          f"{m['rss_sockets_idle_mib']} MiB idle ({m['per_idle_socket_kib']} KiB per socket), "
          f"{m['rss_after_conversations_mib']} MiB after; target met: {report['target_met']}")
    cpu = report["gateway_cpu_ms_per_round_trip"]
    print(f"gateway CPU per round trip (one message each way): A {cpu['a']} ms, B {cpu['b']} ms; "
          f"busy cores A {cpu['a_cores_busy']}, B {cpu['b_cores_busy']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
